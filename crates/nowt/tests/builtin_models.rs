//! The built-in networks are descriptions (issue 30), and each builds exactly the model it built
//! before the move: every layer's name, every weight layer's shapes, tap counts, `W₀` and `B₀`,
//! every batch-norm parameter and buffer, and the losses and weights after three training steps
//! under backprop and the weight mirror, bit for bit. The fingerprints below were computed by
//! the hand-written builders (commit dc83fd9) that the descriptions replaced; the weight
//! mirror's were recorded again when the mirror family's noise moved to its own, faster
//! sampler (`nowt::noise`, issue 28), which draws other values (the backprop ones unchanged).

use nowt::config::{ModelKind, TrainConfig};
use nowt::layers::{ActivationKind, Shortcut};
use nowt::models::Network;
use nowt::optim::Sgd;
use nowt::rules::{self, RuleKind};
use nowt::tensor::Tensor;
use nowt::train::{build_model, train_step};

const CLASSES: usize = 10;
const BATCH: usize = 4;

/// Every built-in model with the image it is fingerprinted on and, for the MLPs and the CIFAR
/// ResNets, the keys that shape them.
fn cases() -> Vec<(&'static str, TrainConfig, [usize; 3])> {
    let cfg = |model: ModelKind, hidden: &[usize], activation, shortcut| TrainConfig {
        model: model.into(),
        hidden: hidden.to_vec(),
        activation,
        shortcut,
        seed: 3,
        ..Default::default()
    };
    let (relu, proj) = (ActivationKind::Relu, Shortcut::Projection);
    use ModelKind::*;
    vec![
        ("mlp", cfg(Mlp, &[48, 32], relu, proj), [1, 6, 6]),
        (
            "mlp-tanh",
            cfg(Mlp, &[20, 30, 12], ActivationKind::Tanh, proj),
            [3, 4, 4],
        ),
        ("mlp-linear", cfg(Mlp, &[], relu, proj), [1, 5, 5]),
        ("lenet5", cfg(Lenet5, &[], relu, proj), [1, 28, 28]),
        (
            "lenet-biotorch",
            cfg(LenetBiotorch, &[], relu, proj),
            [1, 32, 32],
        ),
        ("resnet20", cfg(Resnet20, &[], relu, proj), [3, 10, 10]),
        (
            "resnet20-identity",
            cfg(Resnet20, &[], relu, Shortcut::Identity),
            [3, 10, 10],
        ),
        ("resnet32", cfg(Resnet32, &[], relu, proj), [3, 8, 8]),
        ("resnet56", cfg(Resnet56, &[], relu, proj), [3, 8, 8]),
        ("resnet18", cfg(Resnet18, &[], relu, proj), [3, 33, 33]),
        ("resnet34", cfg(Resnet34, &[], relu, proj), [3, 32, 32]),
        ("resnet50", cfg(Resnet50, &[], relu, proj), [3, 32, 32]),
    ]
}

fn net(cfg: &TrainConfig, rule: RuleKind, input: [usize; 3]) -> Network<f32> {
    let cfg = TrainConfig {
        rule,
        ..cfg.clone()
    };
    let r = rules::build::<f32>(rule, &cfg.rules, BATCH);
    build_model(&cfg, input, CLASSES, r.as_ref())
}

fn tensor(h: &mut crc32fast::Hasher, t: &Tensor<f32>) {
    h.update(format!("{:?}", t.shape()).as_bytes());
    t.data()
        .iter()
        .for_each(|v| h.update(&v.to_bits().to_le_bytes()));
}

/// The crc32 of the network's structure and state: layer names, then each weight layer's
/// name, `W`, `B`, bias, input shape and tap counts, then each parameter and buffer.
fn fingerprint(n: &Network<f32>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for l in &n.layers {
        h.update(l.name().as_bytes());
        h.update(b"|");
    }
    for l in n.weight_layers() {
        let p = l.params();
        h.update(p.name.as_bytes());
        tensor(&mut h, &p.w);
        tensor(&mut h, &p.feedback);
        p.bias.iter().for_each(|b| tensor(&mut h, b));
        h.update(format!("{:?}{:?}", l.input_shape(2), l.tap_reach()).as_bytes());
    }
    for p in n.params() {
        h.update(p.name.as_bytes());
        tensor(&mut h, &p.value);
    }
    for (name, b) in n.buffers() {
        h.update(name.as_bytes());
        tensor(&mut h, b);
    }
    h.finalize()
}

/// The fingerprint after building, then after three SGD steps under `rule` (losses included).
fn trained(cfg: &TrainConfig, rule: RuleKind, input: [usize; 3]) -> (u32, u32) {
    let mut n = net(cfg, rule, input);
    let built = fingerprint(&n);
    let r = rules::build::<f32>(rule, &cfg.rules, BATCH);
    let opt = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-3,
        decay_all: false,
    };
    let mut data = nowt::rng(7, 0);
    let x = Tensor::randn(&[BATCH, input.iter().product()], 1.0, &mut data);
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
    let mut mirror = nowt::rng(7, 1);
    let mut losses = crc32fast::Hasher::new();
    for _ in 0..3 {
        let (loss, _) = train_step(&mut n, r.as_ref(), &opt, &x, &labels, 0.01, &mut mirror)
            .expect("finite loss");
        losses.update(&loss.to_bits().to_le_bytes());
    }
    losses.update(&fingerprint(&n).to_le_bytes());
    (built, losses.finalize())
}

/// `(model, [built, after 3 backprop steps, after 3 weight-mirror steps])`. The first is the
/// same on every host; the trained two involve the GEMM, whose rounding differs between
/// instruction sets, so they hold where they were recorded: [`RECORDED_ON`].
const WANT: [(&str, [u32; 3]); 12] = [
    ("mlp", [0xe8db6d75, 0x97ecdfc4, 0x6d5f8989]),
    ("mlp-tanh", [0xcb260e43, 0xfdf414ee, 0x904814d0]),
    ("mlp-linear", [0xaf4a0fd3, 0x53367178, 0x53367178]),
    ("lenet5", [0x06ab5052, 0x7e7ad32d, 0xa59db11c]),
    ("lenet-biotorch", [0x5cc7753d, 0x635bfa80, 0xa13ddb39]),
    ("resnet20", [0xb7b19fce, 0xf40d204a, 0x698b59fb]),
    ("resnet20-identity", [0xef1e075c, 0x0341e611, 0x28079297]),
    ("resnet32", [0x0cd051e3, 0xf9be3950, 0xd12fe854]),
    ("resnet56", [0xd5aef2e3, 0x17ce7c2b, 0x8ca9c72a]),
    ("resnet18", [0xdc95ed50, 0x9ee8a2fd, 0x8fb8f89e]),
    ("resnet34", [0x378462ea, 0x212db2a9, 0xe9f5308b]),
    ("resnet50", [0xbdb87b2b, 0x8868e9bd, 0xca61c4b7]),
];

/// The instruction sets ([`nowt::tensor::instruction_sets`]) the trained fingerprints were
/// recorded on (an Intel Xeon with AVX-512F).
const RECORDED_ON: &str = "gemm:avx512f,own:avx2+fma";

#[test]
fn builtin_models_build_what_they_built_before_descriptions() {
    let same_host = nowt::tensor::instruction_sets() == RECORDED_ON;
    if !same_host {
        println!("trained fingerprints were recorded on {RECORDED_ON}: only W₀, B₀ and the structure are compared here");
    }
    for ((name, cfg, input), (want_name, want)) in cases().into_iter().zip(WANT) {
        assert_eq!(name, want_name);
        let (built, bp) = trained(&cfg, RuleKind::Backprop, input);
        assert_eq!(built, want[0], "{name}: layers, shapes, W₀ or B₀ changed");
        if same_host {
            let (_, wm) = trained(&cfg, RuleKind::WeightMirror, input);
            assert_eq!(
                [bp, wm],
                [want[1], want[2]],
                "{name}: three training steps changed"
            );
        }
    }
}
