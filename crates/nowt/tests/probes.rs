//! `probe_every`: the layers measured within training, proven against the epoch records (the
//! same measurement at each epoch's last step) and against a run that does not measure.

use nowt::config::TrainConfig;
use nowt::data::{self, DatasetKind};
use nowt::rules::RuleKind;
use nowt::train::{train_from, ControlFlow, EpochRecord, Event, Outcome, ProbeRecord, TrainState};

/// 480 training images in batches of 16: 30 steps an epoch.
fn cfg(rule: RuleKind, probe_every: usize) -> TrainConfig {
    let mut cfg = TrainConfig {
        rule,
        hidden: vec![32],
        batch_size: 16,
        train_limit: 480,
        epochs: 3,
        lr: 0.05,
        threads: 1,
        seed: 3,
        probe_every,
        ..Default::default()
    };
    cfg.rules.wm.warmup_batches = 20;
    cfg
}

/// A whole run's probe and epoch records, and its final `W` and `B` of every layer as bits.
struct Ran {
    probes: Vec<ProbeRecord>,
    epochs: Vec<EpochRecord>,
    weights: Vec<Vec<u32>>,
}

fn run(cfg: &TrainConfig) -> Ran {
    let data = data::load(DatasetKind::Digits, None, &cfg.load_options()).unwrap();
    let mut st = TrainState::new(cfg, data.train.shape, data.train.classes);
    let (mut probes, mut epochs) = (Vec::new(), Vec::new());
    let outcome = train_from(cfg, &data, &mut st, &mut |ev| {
        match ev {
            Event::Probe { record } => probes.push(record.clone()),
            Event::Epoch { record, .. } => epochs.push(record.clone()),
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(matches!(outcome, Outcome::Finished(_)));
    let bits = |t: &nowt::tensor::Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect();
    let layers = st.net.weight_layers();
    let weights = layers
        .iter()
        .flat_map(|l| [bits(&l.params().w), bits(&l.params().feedback)])
        .collect();
    Ran {
        probes,
        epochs,
        weights,
    }
}

/// Every 10 steps (and before the first) a record, at the global steps 0, 10, …, 90; the one at
/// each epoch's last step measures exactly what the epoch's record does, with the epoch's
/// training loss; and the run trains bit for bit as one that does not measure — under the weight
/// mirror (its noise stream between steps), batchwise random sign (`R` redrawn every batch) and
/// Kolen-Pollack (`B` stepped with `W`).
#[test]
fn probes_measure_within_training_without_changing_it() {
    for rule in [
        RuleKind::WeightMirror,
        RuleKind::BatchwiseRandomSign,
        RuleKind::KolenPollack,
    ] {
        let plain = run(&cfg(rule, 0));
        let probed = run(&cfg(rule, 10));
        assert!(plain.probes.is_empty(), "{rule:?}");
        assert_eq!(probed.weights, plain.weights, "{rule:?}: W and B");
        let untimed = |r: &EpochRecord| (r.train.clone(), r.test.clone(), r.layers.clone());
        let (a, b): (Vec<_>, Vec<_>) = (
            probed.epochs.iter().map(untimed).collect(),
            plain.epochs.iter().map(untimed).collect(),
        );
        assert_eq!(a, b, "{rule:?}: epoch records");

        let at: Vec<_> = probed
            .probes
            .iter()
            .map(|p| (p.global_step, p.epoch, p.step))
            .collect();
        // Global step g ≥ 1 is step (g − 1) % 30 + 1 of epoch (g − 1) / 30 + 1.
        let want: Vec<(usize, usize, usize)> = (0..=90)
            .step_by(10)
            .map(|g: usize| match g {
                0 => (0, 1, 0),
                g => (g, (g - 1) / 30 + 1, (g - 1) % 30 + 1),
            })
            .collect();
        assert_eq!(at, want, "{rule:?}: where the records are");
        let first = &probed.probes[0];
        assert_eq!((first.lr, first.loss), (None, None), "{rule:?}");
        assert!(probed.probes[1..]
            .iter()
            .all(|p| p.lr.is_some() && p.loss.is_some()));
        for (e, epoch) in probed.epochs.iter().enumerate() {
            let last = &probed.probes[3 * (e + 1)];
            assert_eq!(last.step, 30, "{rule:?}");
            assert_eq!(last.layers, epoch.layers, "{rule:?}: epoch {}", e + 1);
            assert_eq!(
                last.loss,
                Some(epoch.train.loss),
                "{rule:?}: epoch {}",
                e + 1
            );
            assert_eq!(last.lr, Some(epoch.lr), "{rule:?}: epoch {}", e + 1);
        }
    }
}
