//! Criterion benches. Names encode the shapes and the rule:
//! `linear/<N>x<in>x<out>/{forward,delta_in,grad_w}`,
//! `conv/<N>x<C_in>x<H>x<W>/<C_out>k<k>s<s>/{forward,backward_bp,grad_w}` (ResNet-20's three
//! kinds of 3×3 convolution and its 1×1 projection, batch 128), `step/mlp-784-1000-1000-10/b128/<rule>`
//! and `step/<model>/b128/<rule>` (ResNet-20 and LeNet-5). `.../backward_bp` is grad_W + δ_in.
//! `noise/<N>x<C>x<H>x<W>/{randn,gaussian,uniform}`: one mirror batch's noise for ResNet-20's
//! first stage, by `Tensor::randn` (the ziggurat) and by the mirror family's samplers.

use criterion::{criterion_group, criterion_main, Criterion};

/// The allocator the `nowt` binary uses (see crates/nowt-cli/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use nowt::config::TrainConfig;
use nowt::layers::{Backward, Conv2d, Layer, Linear, WeightLayer};
use nowt::optim::Sgd;
use nowt::rules::{self, Backprop, RuleKind};
use nowt::tensor::{matmul, Tensor};
use nowt::train::{build_model, train_step};

fn linear(c: &mut Criterion) {
    for &(n, i, o) in &[(128usize, 784usize, 1000usize), (128, 1000, 1000)] {
        let mut rng = nowt::rng(0, 0);
        let mut l = Linear::<f32>::new("fc", i, o, 0.05, &mut rng, &mut nowt::rng(0, 1));
        let x = Tensor::randn(&[n, i], 1.0, &mut rng);
        let d = Tensor::randn(&[n, o], 1.0, &mut rng);
        let name = format!("linear/{n}x{i}x{o}");
        c.bench_function(&format!("{name}/forward"), |b| {
            b.iter(|| l.forward(&x, true))
        });
        c.bench_function(&format!("{name}/delta_in"), |b| {
            b.iter(|| matmul(&d, false, &l.p.w, false))
        });
        let mut g = Tensor::default();
        c.bench_function(&format!("{name}/grad_w"), |b| {
            b.iter(|| l.weight_grad(&x, &d, &mut g, 0.0, 1.0))
        });
        let y = l.forward(&x, true);
        c.bench_function(&format!("{name}/backward_bp"), |b| {
            b.iter(|| l.backward(&x, &y, &d, &mut Backward::new(&Backprop), true))
        });
    }
}

fn conv(c: &mut Criterion) {
    // (C_in, H, C_out, k, stride, pad): ResNet-20's stage-1, stage-2 entry and stage-3 3×3
    // convolutions and the stage-2 projection.
    for &(ci, h, co, k, s, p) in &[
        (16usize, 32usize, 16usize, 3usize, 1usize, 1usize),
        (16, 32, 32, 3, 2, 1),
        (64, 8, 64, 3, 1, 1),
        (16, 32, 32, 1, 2, 0),
    ] {
        let n = 128;
        let mut rng = nowt::rng(0, 0);
        let mut l = Conv2d::<f32>::new(
            "conv",
            ci,
            co,
            k,
            s,
            p,
            false,
            (h, h),
            0.05,
            &mut rng,
            &mut nowt::rng(0, 1),
        );
        let x = Tensor::randn(&[n, ci, h, h], 1.0, &mut rng);
        let y = l.forward(&x, true);
        let d = Tensor::randn(y.shape(), 1.0, &mut rng);
        let name = format!("conv/{n}x{ci}x{h}x{h}/{co}k{k}s{s}");
        c.bench_function(&format!("{name}/forward"), |b| {
            b.iter(|| l.forward(&x, true))
        });
        // The whole backward under backprop: grad_W (timed alone below) and δ_in.
        c.bench_function(&format!("{name}/backward_bp"), |b| {
            b.iter(|| l.backward(&x, &y, &d, &mut Backward::new(&Backprop), true))
        });
        let mut g = Tensor::default();
        c.bench_function(&format!("{name}/grad_w"), |b| {
            b.iter(|| l.weight_grad(&x, &d, &mut g, 0.0, 1.0))
        });
    }
}

fn steps(c: &mut Criterion) {
    for kind in RuleKind::ALL {
        let cfg = TrainConfig {
            hidden: vec![1000, 1000],
            batch_size: 128,
            ..Default::default()
        };
        let rule = rules::build::<f32>(kind, &cfg.rules, 128);
        let mut net = build_model(&cfg, [1, 28, 28], 10, rule.as_ref());
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            decay_all: false,
        };
        let mut rng = nowt::rng(0, 7);
        let x = Tensor::randn(&[128, 784], 1.0, &mut rng);
        let y: Vec<u32> = (0..128).map(|i| i % 10).collect();
        c.bench_function(
            &format!("step/mlp-784-1000-1000-10/b128/{}", kind.alias()),
            |b| {
                b.iter(|| {
                    train_step(&mut net, rule.as_ref(), &sgd, &x, &y, 0.05, &mut rng)
                        .expect("finite")
                })
            },
        );
    }
}

fn convnet_steps(c: &mut Criterion) {
    use nowt::config::ModelKind;
    for (model, input) in [
        (ModelKind::Resnet20, [3, 32, 32]),
        (ModelKind::Lenet5, [1, 28, 28]),
    ] {
        for kind in RuleKind::ALL {
            let cfg = TrainConfig {
                model: model.into(),
                batch_size: 128,
                ..Default::default()
            };
            let rule = rules::build::<f32>(kind, &cfg.rules, 128);
            let mut net = build_model(&cfg, input, 10, rule.as_ref());
            let sgd = Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 1e-4,
                decay_all: false,
            };
            let mut rng = nowt::rng(0, 7);
            let x = Tensor::randn(&[128, input.iter().product()], 1.0, &mut rng);
            let y: Vec<u32> = (0..128).map(|i| i % 10).collect();
            c.bench_function(
                &format!("step/{}/b128/{}", model.name(), kind.alias()),
                |b| {
                    b.iter(|| {
                        train_step(&mut net, rule.as_ref(), &sgd, &x, &y, 0.05, &mut rng)
                            .expect("finite")
                    })
                },
            );
        }
    }
}

/// One mirror batch of noise for a ResNet-20 stage-1 convolution, `[128, 16, 32, 32]`.
fn noise(c: &mut Criterion) {
    let shape = [128usize, 16, 32, 32];
    let name = "noise/128x16x32x32";
    let mut rng = nowt::rng(1, 0);
    c.bench_function(&format!("{name}/randn"), |b| {
        b.iter(|| Tensor::<f32>::randn(&shape, 1.0, &mut rng))
    });
    c.bench_function(&format!("{name}/gaussian"), |b| {
        b.iter(|| nowt::noise::gaussian::<f32>(&shape, 1.0, &mut rng))
    });
    c.bench_function(&format!("{name}/uniform"), |b| {
        b.iter(|| nowt::noise::uniform::<f32>(&shape, 1.0, &mut rng))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = linear, steps, noise
}
criterion_group! {
    name = convnets;
    config = Criterion::default().sample_size(10);
    targets = conv, convnet_steps
}
criterion_main!(benches, convnets);
