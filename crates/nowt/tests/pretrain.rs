//! Noise pre-training ([`TrainConfig::pretrain_noise_steps`]) proven against its definition:
//! the phase is exactly that many training steps, under the run's rule, optimiser and base
//! rate, on [`noise_batch`]'s inputs and labels, before the first data step.

use nowt::config::{PretrainLabels, TrainConfig};
use nowt::data::{self, DatasetKind};
use nowt::rules::{self, MirrorNoise, RuleKind};
use nowt::train::{
    build_model, noise_batch, train_from, train_step, ControlFlow, Event, Outcome, TrainState,
    STREAM_MIRROR, STREAM_PRETRAIN,
};
use nowt::Tensor;

fn cfg(rule: RuleKind) -> TrainConfig {
    TrainConfig {
        rule,
        hidden: vec![32],
        batch_size: 16,
        lr: 0.05,
        threads: 1,
        seed: 3,
        pretrain_noise_steps: 7,
        ..Default::default()
    }
}

/// A run stopped as data training is about to start holds, bit for bit, the network that 7
/// plain [`train_step`]s on `noise_batch(k)`, k = 0…6, make from the same initialisation —
/// under feedback alignment and under the weight mirror (whose mirror steps after each
/// training step draw from the run's mirror stream) — and reported a record before the first
/// step and after each (7 steps: every one is a tenth, rounded up), the first without a loss.
#[test]
fn noise_pretraining_is_that_many_training_steps_on_the_noise_batches() {
    let data = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    for rule_kind in [RuleKind::FeedbackAlignment, RuleKind::WeightMirror] {
        let cfg = cfg(rule_kind);
        let (shape, classes) = (data.train.shape, data.train.classes);
        let mut st = TrainState::new(&cfg, shape, classes);
        let mut steps = Vec::new();
        let outcome = train_from(&cfg, &data, &mut st, &mut |ev| match ev {
            Event::Pretrain { record, .. } => {
                steps.push((record.step, record.loss.is_some(), record.layers.len()));
                ControlFlow::Continue(())
            }
            Event::Started { .. } => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .unwrap();
        assert!(matches!(outcome, Outcome::Stopped));
        let want: Vec<_> = (0..=7).map(|k| (k, k > 0, 2)).collect();
        assert_eq!(steps, want, "{rule_kind:?}: records");

        let rule = rules::build::<f32>(rule_kind, &cfg.rules, cfg.batch_size);
        let mut net = build_model(&cfg, shape, classes, rule.as_ref());
        let mut opt = cfg.optimizer();
        let mut rng = nowt::rng(cfg.seed, STREAM_MIRROR);
        rule.before_training(&mut net.weight_layers_mut(), &mut rng);
        let sample = data.train.batch(&[0]).unwrap().0.shape()[1..].to_vec();
        for k in 0..7 {
            let (x, y) = noise_batch(&cfg, k, &sample, classes, (0, 1));
            opt.set_step(k as u64 + 1);
            train_step(&mut net, rule.as_ref(), &opt, &x, &y, cfg.lr, &mut rng).unwrap();
        }
        for (a, b) in st.net.weight_layers().iter().zip(net.weight_layers()) {
            let (a, b) = (a.params(), b.params());
            assert_eq!(a.w, b.w, "{rule_kind:?}: W of {}", a.name);
            assert_eq!(a.feedback, b.feedback, "{rule_kind:?}: B of {}", a.name);
        }
        assert!(st.pretrained);
    }
}

/// Noise batches: shaped like the data's samples, the ranks' shares concatenate to the one-rank
/// batch, labels in range, balanced labels as even as the batch allows, and the noise has the
/// asked standard deviation under both distributions.
#[test]
fn noise_batches_are_shared_labelled_and_scaled_as_configured() {
    let sample = [1, 8, 8];
    for (noise, labels) in [
        (MirrorNoise::Gaussian, PretrainLabels::Uniform),
        (MirrorNoise::Uniform, PretrainLabels::Balanced),
    ] {
        let cfg = TrainConfig {
            batch_size: 103,
            pretrain_noise: noise,
            pretrain_noise_std: 0.5,
            pretrain_labels: labels,
            ..Default::default()
        };
        let (x, y) = noise_batch(&cfg, 4, &sample, 10, (0, 1));
        assert_eq!(x.shape(), [103, 1, 8, 8]);
        assert!(y.iter().all(|&l| l < 10));
        let n = x.len() as f64;
        let var = x.data().iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        assert!(
            (var.sqrt() - 0.5).abs() < 0.02,
            "{noise:?}: std {}",
            var.sqrt()
        );
        if labels == PretrainLabels::Balanced {
            let mut count = [0usize; 10];
            y.iter().for_each(|&l| count[l as usize] += 1);
            assert!(count.iter().all(|&c| c == 10 || c == 11), "{count:?}");
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for rank in 0..3 {
            let (xr, yr) = noise_batch(&cfg, 4, &sample, 10, (rank, 3));
            xs.extend_from_slice(xr.data());
            ys.extend(yr);
        }
        assert_eq!(xs, x.data(), "{noise:?}: the shares are not the batch");
        assert_eq!(ys, y);
        let (other, _) = noise_batch(&cfg, 5, &sample, 10, (0, 1));
        assert_ne!(other.data(), x.data(), "step 5 repeats step 4");
    }
    // Step k's inputs are the first draw of stream `STREAM_PRETRAIN + (k << 8)`, apart from
    // the run's other streams (weights, feedback, shuffling, mirror, augmentation, the rule's).
    let cfg = TrainConfig {
        batch_size: 4,
        pretrain_noise_std: 0.5,
        ..Default::default()
    };
    for k in [0usize, 3] {
        let stream = STREAM_PRETRAIN + ((k as u64) << 8);
        let want: Tensor<f32> =
            nowt::noise::gaussian(&[4, 1, 8, 8], 0.5, &mut nowt::rng(cfg.seed, stream));
        assert_eq!(
            noise_batch(&cfg, k, &sample, 10, (0, 1)).0,
            want,
            "step {k}"
        );
    }
}

/// One-time soft alignment: under the rules whose `M` is `B`, every layer's `B₀` makes the angle
/// `acos α` with `W₀` (to 0.01°) at `B₀`'s own norm (to 1e-5), `α = 1` making it `W₀`'s
/// direction; under the rules whose `M` is not `B` nothing changes.
#[test]
fn soft_alignment_sets_the_angle_between_w0_and_b0() {
    let data = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    let (shape, classes) = (data.train.shape, data.train.classes);
    let through_b = [
        RuleKind::FeedbackAlignment,
        RuleKind::WeightMirror,
        RuleKind::KolenPollack,
        RuleKind::SymmetricAlignment,
        RuleKind::InformationAlignment,
        RuleKind::ActivationAlignment,
    ];
    for kind in RuleKind::ALL {
        let rule = rules::build::<f32>(kind, &Default::default(), 16);
        assert_eq!(
            rules::carries_through_b(rule.as_ref()),
            through_b.contains(&kind),
            "{kind:?}"
        );
        let at = |alpha: f64| {
            let cfg = TrainConfig {
                rule: kind,
                hidden: vec![300],
                init_alignment: alpha,
                ..Default::default()
            };
            build_model(&cfg, shape, classes, rule.as_ref())
        };
        let warned = TrainConfig {
            rule: kind,
            init_alignment: 0.5,
            ..Default::default()
        }
        .without_effect()
        .iter()
        .any(|w| w.starts_with("init_alignment = 0.5 has no effect"));
        assert_eq!(
            warned,
            !through_b.contains(&kind),
            "{kind:?}: the no-effect warning"
        );
        let plain = at(0.0);
        for alpha in [0.5, 0.9, 1.0] {
            let net = at(alpha);
            for (l, p0) in net.weight_layers().iter().zip(plain.weight_layers()) {
                let (p, p0) = (l.params(), p0.params());
                if !through_b.contains(&kind) {
                    assert_eq!(p.feedback, p0.feedback, "{kind:?} changed B");
                    continue;
                }
                let angle = nowt::metrics::angle_deg(&p.w, &p.feedback).unwrap();
                let want = alpha.acos().to_degrees();
                assert!(
                    (angle - want).abs() < 0.01,
                    "{kind:?} {}: {angle}° for α {alpha}",
                    p.name
                );
                let ratio = p.feedback.norm() / p0.feedback.norm();
                assert!(
                    (ratio - 1.0).abs() < 1e-5,
                    "{kind:?} {}: norm ×{ratio}",
                    p.name
                );
            }
        }
    }
}

/// A non-finite loss during noise pre-training stops the run with an error that names the
/// phase and its step, not an "epoch 0".
#[test]
fn a_non_finite_loss_in_pretraining_names_the_phase() {
    let data = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    let cfg = TrainConfig {
        lr: 1e30,
        allow_divergence: true,
        ..cfg(RuleKind::FeedbackAlignment)
    };
    let mut st = TrainState::new(&cfg, data.train.shape, data.train.classes);
    let err = train_from(&cfg, &data, &mut st, &mut |_| ControlFlow::Continue(()))
        .err()
        .expect("a rate of 1e30 diverges")
        .to_string();
    assert!(
        err.contains("non-finite loss at noise pre-training, step "),
        "{err}"
    );
    assert!(!err.contains("epoch"), "{err}");
}
