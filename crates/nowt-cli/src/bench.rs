//! `nowt bench`: the median time of a full training step (forward, loss, backward under the
//! rule, SGD with momentum and weight decay, the rule's after-step work) on random data, in the
//! same form as `../shared/peer/torch_peer.py` prints.

use std::time::Instant;

use anyhow::{Context, Result};
use nowt::config::{ModelKind, TrainConfig};
use nowt::optim::Sgd;
use nowt::tensor::Tensor;
use nowt::train::{build_model, train_step, train_step_on};

use nowt::rules::RuleKind;

use crate::args::{BenchArgs, Choice};

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.batch_size == 0 || a.steps == 0 {
        anyhow::bail!("--batch-size and --steps must be positive");
    }
    let rules = match a.rule {
        Choice::All => RuleKind::ALL.to_vec(),
        Choice::One(r) => vec![r],
    };
    let mut times = Vec::new();
    for &rule in &rules {
        let ms = step_ms(&a, rule)?;
        times.push((rule, ms));
        if crate::world::leads() {
            print_line(&a, rule, ms);
        }
    }
    if times.len() > 1 && crate::world::leads() {
        // The rule column as wide as the longest name (direct-random-target-projection: 31).
        let w = times.iter().map(|(r, _)| r.name().len()).max().unwrap_or(0);
        outln!("\n{:<w$} {:>10} {:>11}", "rule", "ms/step", "× backprop");
        let bp = times
            .iter()
            .find(|(r, _)| *r == RuleKind::Backprop)
            .map(|t| t.1);
        for (rule, ms) in &times {
            let ratio = bp.map_or("–".to_string(), |b| format!("{:.2}", ms / b));
            outln!("{:<w$} {ms:>10.2} {ratio:>11}", rule.name());
        }
    }
    Ok(())
}

/// The median time in ms of a training step of `a`'s configuration under `rule`.
fn step_ms(a: &BenchArgs, rule: RuleKind) -> Result<f64> {
    let cfg = TrainConfig {
        model: a.model.clone(),
        hidden: a.hidden.clone(),
        rule,
        batch_size: a.batch_size,
        ..Default::default()
    };
    cfg.validate().context("bad bench configuration")?;
    let ranks = crate::world::get().size();
    if a.batch_size < ranks {
        anyhow::bail!(
            "--batch-size {} is smaller than the {ranks} ranks",
            a.batch_size
        );
    }
    let pool = crate::run::thread_pool(a.threads.max(1))?;
    let classes = a.classes.max(1);
    pool.install(|| {
        let rule = nowt::rules::build::<f32>(cfg.rule, &cfg.rules, cfg.batch_size);
        // The peer's inputs: flat MNIST-sized vectors for the MLP, CIFAR images for the
        // convnets (LeNet-5: one channel), or `--image-size`.
        let input = match a.model.builtin() {
            Some(ModelKind::Mlp) => [1, 1, a.inputs],
            Some(ModelKind::Lenet5 | ModelKind::LenetBiotorch) => [1, a.image_size, a.image_size],
            _ => [3, a.image_size, a.image_size],
        };
        cfg.model_parts(input, classes)?;
        let mut net = build_model(&cfg, input, classes, rule.as_ref());
        // The peer's optimiser: lr `--lr` (0.05), momentum 0.9, weight decay 1e-4.
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            decay_all: false,
        };
        let mut rng = nowt::rng(0, 7);
        let dim: usize = input.iter().product();
        let x = Tensor::<f32>::randn(&[a.batch_size, dim], 1.0, &mut rng);
        let y: Vec<u32> = (0..a.batch_size).map(|i| (i % classes) as u32).collect();
        // Under mpirun, each rank steps on its share of the batch (`--batch-size` is global).
        let world = crate::world::get();
        let mine = nowt::dist::share(a.batch_size, world.rank(), world.size());
        let x_mine = Tensor::from_vec(
            &[mine.len(), dim],
            x.data()[mine.start * dim..mine.end * dim].to_vec(),
        );
        let mut times = Vec::with_capacity(a.steps);
        for i in 0..a.warmup + a.steps {
            let t = Instant::now();
            let stepped = if world.size() == 1 {
                train_step(&mut net, rule.as_ref(), &sgd, &x, &y, a.lr, &mut rng).map(|_| ())
            } else {
                let (sgd, y) = (&sgd, &y[mine.clone()]);
                train_step_on(
                    world,
                    a.batch_size,
                    &mut net,
                    rule.as_ref(),
                    sgd,
                    &x_mine,
                    y,
                    a.lr,
                    &mut rng,
                )
                .map(|_| ())
            };
            stepped.map_err(|origin| {
                anyhow::anyhow!("bench diverged: non-finite values in {origin}")
            })?;
            if i >= a.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        Ok::<f64, anyhow::Error>(times[times.len() / 2])
    })
}

/// The peer's line format for one rule's median step (with several ranks: the global batch's
/// step, and rank 0's memory; with several rules, the process's peak so far).
fn print_line(a: &BenchArgs, rule: RuleKind, ms: f64) {
    let ranks = match crate::world::get().size() {
        1 => String::new(),
        k => format!(" ranks={k}"),
    };
    outln!(
        "NOWT model={} image={} rule={} batch={} threads={} ms_per_step={ms:.2} images_per_s={:.1} peak_rss_mb={:.0} isa={}{ranks}",
        a.model.name(),
        a.image_size,
        rule.alias(),
        a.batch_size,
        a.threads,
        a.batch_size as f64 / ms * 1e3,
        peak_rss_mb().unwrap_or(f64::NAN),
        nowt::tensor::instruction_sets()
    );
}
