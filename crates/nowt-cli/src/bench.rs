//! `nowt bench`: the median time of a full training step (forward, loss, backward under the
//! rule, SGD with momentum and weight decay, the rule's after-step work) on random data, in the
//! same form as `../shared/peer/torch_peer.py` prints; for a rule with a warm-up (the mirror
//! family's noise batches before the first step), also the median noise batch and the whole
//! warm-up that makes at the rule's default count.

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
        let t = time_rule(&a, rule)?;
        if crate::world::leads() {
            print_line(&a, rule, &t);
        }
        times.push((rule, t));
    }
    if times.len() > 1 && crate::world::leads() {
        print_table(&times);
    }
    Ok(())
}

/// A rule's median training step, and its warm-up where it has one.
struct Timing {
    step_ms: f64,
    warmup: Option<Warmup>,
}

/// The median noise batch of a rule's warm-up and the rule's number of them.
struct Warmup {
    batch_ms: f64,
    batches: usize,
}

impl Warmup {
    /// The whole warm-up at the median batch's time, in seconds.
    fn seconds(&self) -> f64 {
        self.batch_ms * self.batches as f64 / 1e3
    }
}

/// Every rule's step time and its ratio to backprop's; the warm-up's seconds and what they are
/// in backprop steps (against an epoch's steps: CIFAR-10's 45,000 training images at batch 128
/// are 352).
fn print_table(times: &[(RuleKind, Timing)]) {
    // The rule column as wide as the longest name (direct-random-target-projection: 31).
    let w = times.iter().map(|(r, _)| r.name().len()).max().unwrap_or(0);
    outln!(
        "\n{:<w$} {:>10} {:>11} {:>11} {:>14}",
        "rule",
        "ms/step",
        "× backprop",
        "warm-up s",
        "in bp steps"
    );
    let bp = times
        .iter()
        .find(|(r, _)| *r == RuleKind::Backprop)
        .map(|t| t.1.step_ms);
    for (rule, t) in times {
        let ms = t.step_ms;
        let ratio = bp.map_or("–".to_string(), |b| format!("{:.2}", ms / b));
        let (secs, steps) = match (&t.warmup, bp) {
            (Some(wu), Some(b)) => (
                format!("{:.1}", wu.seconds()),
                format!("{:.0}", wu.seconds() * 1e3 / b),
            ),
            (Some(wu), None) => (format!("{:.1}", wu.seconds()), "–".to_string()),
            (None, _) => ("–".to_string(), "–".to_string()),
        };
        outln!(
            "{:<w$} {ms:>10.2} {ratio:>11} {secs:>11} {steps:>14}",
            rule.name()
        );
    }
    if let Some(wu) = times.iter().find_map(|(_, t)| t.warmup.as_ref()) {
        outln!(
            "(warm-up: the noise batches before the first step, {} by default, at the median \
             batch's time; a CIFAR-10 epoch at batch 128 is 352 steps with a 10% validation split)",
            wu.batches
        );
    }
}

/// The median time in ms of a training step of `a`'s configuration under `rule`, and of one
/// noise batch of its warm-up (as many batches as timed steps, after the steps).
fn time_rule(a: &BenchArgs, rule: RuleKind) -> Result<Timing> {
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
        let warmup = (rule.warmup_batches() > 0).then(|| Warmup {
            batch_ms: median_ms(a.steps, || {
                rule.warmup_batch(&mut net.weight_layers_mut(), &mut rng)
            }),
            batches: rule.warmup_batches(),
        });
        Ok::<Timing, anyhow::Error>(Timing {
            step_ms: median(times),
            warmup,
        })
    })
}

/// The median of `runs` timings of `f`, in ms.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The peer's line format for one rule's median step (with several ranks: the global batch's
/// step, and rank 0's memory; with several rules, the process's peak so far), and for a rule
/// with a warm-up its median noise batch and the whole warm-up's seconds at that rate.
fn print_line(a: &BenchArgs, rule: RuleKind, t: &Timing) {
    let ms = t.step_ms;
    let ranks = match crate::world::get().size() {
        1 => String::new(),
        k => format!(" ranks={k}"),
    };
    let warmup = t.warmup.as_ref().map_or(String::new(), |wu| {
        format!(
            " warmup_batch_ms={:.2} warmup_batches={} warmup_s={:.1}",
            wu.batch_ms,
            wu.batches,
            wu.seconds()
        )
    });
    outln!(
        "NOWT model={} image={} rule={} batch={} threads={} ms_per_step={ms:.2} images_per_s={:.1} peak_rss_mb={:.0} isa={}{ranks}{warmup}",
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
