//! Criterion benches. Names encode the shapes and the rule:
//! `linear/<N>x<in>x<out>/{forward,delta_in,grad_w}` and `step/mlp-784-1000-1000-10/b128/<rule>`.

use criterion::{criterion_group, criterion_main, Criterion};

/// The allocator the `nowt` binary uses (see crates/nowt-cli/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use nowt::config::TrainConfig;
use nowt::layers::{Backward, Layer, Linear, WeightLayer};
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = linear, steps
}
criterion_main!(benches);
