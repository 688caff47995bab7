//! Rule oracles (DESIGN.md §6): exact identities each rule must satisfy.

use nowt::config::TrainConfig;
use nowt::data::{self, DatasetKind};
use nowt::layers::softmax_cross_entropy;
use nowt::layers::{ActivationKind, Backward, Conv2d, DeltaRecord, Layer, Linear, WeightLayer};
use nowt::metrics::angle_deg;
use nowt::models::{mlp, Network};
use nowt::optim::Sgd;
use nowt::rules::{
    self, mirror_step, Backprop, KolenPollack, MirrorConfig, MirrorInit, Rule, RuleKind, SignScale,
    SignSymmetry,
};
use nowt::tensor::{Real, Tensor};
use nowt::train::{build_model, train_step};

fn digits_batches(batch: usize, count: usize) -> Vec<(Tensor<f32>, Vec<u32>)> {
    let split = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    (0..count)
        .map(|i| {
            let idx: Vec<usize> = (0..batch)
                .map(|j| (i * batch + j) % split.train.len())
                .collect();
            split.train.batch(&idx).unwrap()
        })
        .collect()
}

fn bits<T: Real>(net: &Network<T>) -> Vec<Vec<u64>> {
    net.weight_layers()
        .iter()
        .flat_map(|l| {
            let p = l.params();
            [&p.w, p.bias.as_ref().unwrap()]
                .map(|t| t.data().iter().map(|v| v.f64().to_bits()).collect())
        })
        .collect()
}

fn cfg(rule: RuleKind) -> TrainConfig {
    TrainConfig {
        rule,
        hidden: vec![32, 16],
        seed: 3,
        ..Default::default()
    }
}

/// Feedback alignment with `B := W` sends exactly backprop's error: one step is bit-identical.
#[test]
fn feedback_alignment_with_b_equal_w_is_backprop() {
    let batches = digits_batches(32, 1);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
        decay_all: false,
    };
    let bp = rules::build::<f32>(RuleKind::Backprop, &Default::default(), 32);
    let fa = rules::build::<f32>(RuleKind::FeedbackAlignment, &Default::default(), 32);
    let mut a = build_model(&cfg(RuleKind::Backprop), [1, 8, 8], 10, bp.as_ref());
    let mut b = build_model(
        &cfg(RuleKind::FeedbackAlignment),
        [1, 8, 8],
        10,
        fa.as_ref(),
    );
    for l in b.weight_layers_mut() {
        let p = l.params_mut();
        p.feedback = p.w.clone();
    }
    let (x, y) = &batches[0];
    let mut rng = nowt::rng(0, 3);
    let la = train_step(&mut a, bp.as_ref(), &sgd, x, y, 0.05, &mut rng)
        .unwrap()
        .0;
    let lb = train_step(&mut b, fa.as_ref(), &sgd, x, y, 0.05, &mut rng)
        .unwrap()
        .0;
    assert_eq!(la.to_bits(), lb.to_bits());
    for (la, lb) in a.weight_layers().iter().zip(b.weight_layers()) {
        assert_eq!(la.params().grad_w, lb.params().grad_w);
    }
    assert_eq!(bits(&a), bits(&b));
    // ... and with a random B it is not (the comparison above can fail).
    let mut c = build_model(
        &cfg(RuleKind::FeedbackAlignment),
        [1, 8, 8],
        10,
        fa.as_ref(),
    );
    train_step(&mut c, fa.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    assert_ne!(bits(&a), bits(&c));
}

/// The output-layer ablation: feedback alignment with the top layer under backprop is, bit for
/// bit, feedback alignment with the top layer's `B := W` (and the lower layers' own `B`); plain
/// feedback alignment is not (the comparison can fail).
#[test]
fn output_layer_backprop_sends_w_at_the_top_and_the_rule_below() {
    use nowt::rules::{with_output_layer, OutputLayerRule};
    let batches = digits_batches(32, 1);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
        decay_all: false,
    };
    let fa = || rules::build::<f32>(RuleKind::FeedbackAlignment, &Default::default(), 32);
    let net = || {
        build_model(
            &cfg(RuleKind::FeedbackAlignment),
            [1, 8, 8],
            10,
            fa().as_ref(),
        )
    };
    let (mut a, mut b, mut c) = (net(), net(), net());
    let top = a.weight_layers().last().unwrap().params().name.clone();
    let ablated = with_output_layer(fa(), OutputLayerRule::Backprop, &top);
    assert_eq!(ablated.kind(), RuleKind::FeedbackAlignment);
    {
        let mut layers = b.weight_layers_mut();
        let p = layers.last_mut().unwrap().params_mut();
        p.feedback = p.w.clone();
    }
    let (x, y) = &batches[0];
    let mut rng = nowt::rng(0, 3);
    train_step(&mut a, ablated.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    train_step(&mut b, fa().as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    train_step(&mut c, fa().as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
    // `same` is the rule itself.
    let same = with_output_layer(fa(), OutputLayerRule::Same, &top);
    let (mut d, mut e) = (net(), net());
    train_step(&mut d, same.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    train_step(&mut e, fa().as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    assert_eq!(bits(&d), bits(&e));
}

/// The output-layer ablation under direct feedback alignment: with the top layer under
/// backprop it is, bit for bit, DFA with the top layer's `D := W` (there `e` is the layer's own
/// `δ_out`), the hidden layers still receiving `e · D`; plain DFA is not (the comparison can
/// fail).
#[test]
fn output_layer_backprop_under_dfa_is_dfa_with_the_tops_d_equal_w() {
    use nowt::rules::{with_output_layer, OutputLayerRule};
    let batches = digits_batches(32, 1);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
        decay_all: false,
    };
    let kind = RuleKind::DirectFeedbackAlignment;
    let dfa = || rules::build::<f32>(kind, &Default::default(), 32);
    let net = || build_model(&cfg(kind), [1, 8, 8], 10, dfa().as_ref());
    let (mut a, mut b, mut c) = (net(), net(), net());
    let top = a.weight_layers().last().unwrap().params().name.clone();
    let ablated = with_output_layer(dfa(), OutputLayerRule::Backprop, &top);
    {
        let mut layers = b.weight_layers_mut();
        let p = layers.last_mut().unwrap().params_mut();
        p.direct = Some(p.w.clone());
    }
    let (x, y) = &batches[0];
    let mut rng = nowt::rng(0, 3);
    train_step(&mut a, ablated.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    train_step(&mut b, dfa().as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    train_step(&mut c, dfa().as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
}

/// The layer records measure `∠(W, M)` only where `M` stands for `W`: under direct feedback
/// alignment the output layer (where `D` carries the layer's own error), never a hidden layer
/// whose `D` happens to have `W`'s shape (as wide as the output: `[10, 10]`), where it carries
/// the output error; under direct random target projection no layer (its `D` carries the
/// target, at the output layer too); under the output-layer ablation the top angle is 0
/// (`M = W`). The same layers get a `.M` from `rule_matrices`.
#[test]
fn broadcast_rules_measure_angles_only_where_d_stands_for_w() {
    use nowt::train::{layer_records, rule_matrices};
    let (x, y) = &digits_batches(16, 1)[0];
    for (kind, ablation) in [
        (RuleKind::DirectFeedbackAlignment, false),
        (RuleKind::DirectFeedbackAlignment, true),
        (RuleKind::DirectRandomTargetProjection, false),
        (RuleKind::DirectRandomTargetProjection, true),
    ] {
        let mut config = TrainConfig {
            hidden: vec![10, 10],
            ..cfg(kind)
        };
        if ablation {
            config.output_layer_rule = nowt::rules::OutputLayerRule::Backprop;
        }
        let rule = rules::build::<f32>(config.rule, &config.rules, 16);
        let mut net = build_model(&config, [1, 8, 8], 10, rule.as_ref());
        let rule = nowt::train::training_rule(&config, &net);
        let recs = layer_records(&mut net, rule.as_ref(), x, y);
        let angles: Vec<Option<f64>> = recs.iter().map(|r| r.weight_angle_deg).collect();
        assert_eq!(angles.len(), 3);
        assert_eq!((angles[0], angles[1]), (None, None), "{recs:?}");
        assert!(recs[1].sign_concordance.is_none() && recs[1].norm_ratio.is_none());
        let ms: Vec<String> = rule_matrices(&config, &net)
            .into_iter()
            .map(|m| m.0)
            .collect();
        if kind == RuleKind::DirectRandomTargetProjection && !ablation {
            assert_eq!(angles[2], None, "{kind:?}: D carries the target");
            assert!(ms.is_empty(), "{ms:?}");
            continue;
        }
        let top = angles[2].expect("the output layer's angle");
        assert_eq!(top == 0.0, ablation, "{kind:?} {top}");
        assert_eq!(ms, ["fc3.M"]);
    }
}

/// Under the output-layer ablation every rule keeps its own `B` dynamics: the same `B₀`, the same
/// shared-update decay, the same warm-up and per-step work on `B` (the mirror, brSF's redraw).
#[test]
fn output_layer_backprop_keeps_every_rules_feedback_dynamics() {
    use nowt::rules::{with_output_layer, OutputLayerRule};
    for kind in RuleKind::ALL {
        let plain = rules::build::<f32>(kind, &Default::default(), 16);
        let mut a = build_model(&cfg(kind), [1, 8, 8], 10, plain.as_ref());
        let top = a.weight_layers().last().unwrap().params().name.clone();
        let wrapped = with_output_layer(
            rules::build::<f32>(kind, &Default::default(), 16),
            OutputLayerRule::Backprop,
            &top,
        );
        let mut b = build_model(&cfg(kind), [1, 8, 8], 10, wrapped.as_ref());
        let feedback = |n: &Network<f32>| -> Vec<Tensor<f32>> {
            n.weight_layers()
                .iter()
                .map(|l| l.params().feedback.clone())
                .collect()
        };
        assert_eq!(feedback(&a), feedback(&b), "{kind:?}: B₀");
        assert_eq!(
            plain.shared_update_decay(0.1),
            wrapped.shared_update_decay(0.1),
            "{kind:?}"
        );
        let (mut ra, mut rb) = (nowt::rng(6, 0), nowt::rng(6, 0));
        plain.before_training(&mut a.weight_layers_mut(), &mut ra);
        wrapped.before_training(&mut b.weight_layers_mut(), &mut rb);
        assert_eq!(feedback(&a), feedback(&b), "{kind:?}: warm-up");
        plain.after_step(&mut a.weight_layers_mut(), &mut ra);
        wrapped.after_step(&mut b.weight_layers_mut(), &mut rb);
        assert_eq!(feedback(&a), feedback(&b), "{kind:?}: after a step");
    }
}

/// Under Adam and AdamW, Kolen-Pollack's `B` receives exactly `W`'s update term with the decay
/// `λ` decoupled: `W − B = (1 − ηλ)^t (W₀ − B₀)` layer by layer (but the first, whose `B` stays).
#[test]
fn kolen_pollack_under_adam_shrinks_w_minus_b_by_one_minus_eta_lambda() {
    use nowt::optim::OptimizerKind;
    let batches = digits_batches(32, 6);
    let (eta, lambda) = (0.01, 2.0);
    for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
        let mut c = cfg(RuleKind::KolenPollack);
        c.optimizer = kind;
        c.rules.kp_decay = Some(lambda);
        let kp = rules::build::<f32>(RuleKind::KolenPollack, &c.rules, 32);
        let mut net = build_model(&c, [1, 8, 8], 10, kp.as_ref());
        let diff = |n: &Network<f32>| -> Vec<Tensor<f32>> {
            n.weight_layers()
                .iter()
                .map(|l| l.params().w.zip_map(&l.params().feedback, |w, b| w - b))
                .collect()
        };
        let d0 = diff(&net);
        let b0 = net.weight_layers()[0].params().feedback.clone();
        let w0 = net.weight_layers()[1].params().w.clone();
        let mut opt = c.optimizer();
        let mut rng = nowt::rng(0, 9);
        for (t, (x, y)) in batches.iter().enumerate() {
            opt.set_step(t as u64 + 1);
            train_step(&mut net, kp.as_ref(), &opt, x, y, eta, &mut rng).unwrap();
            let factor = (1.0 - eta * lambda).powi(t as i32 + 1) as f32;
            for (i, (d, d0)) in diff(&net).iter().zip(&d0).enumerate().skip(1) {
                let want = d0.map(|v| v * factor);
                let err = d.zip_map(&want, |a, b| a - b).norm() / want.norm();
                assert!(err < 1e-5, "{kind:?}, layer {i}, step {}: {err:e}", t + 1);
            }
        }
        assert_eq!(net.weight_layers()[0].params().feedback, b0, "{kind:?}");
        // ... while W itself took Adam's steps, not only the decay (so the law is not vacuous).
        let factor = (1.0 - eta * lambda).powi(batches.len() as i32) as f32;
        let w = &net.weight_layers()[1].params().w;
        let moved = w.zip_map(&w0, |w, w0| w - w0 * factor).norm() / w0.norm();
        assert!(moved > 1e-2, "{kind:?}: W moved by {moved:e}");
    }
}

/// Kolen-Pollack started at `B₀ = W₀` stays bit-identical to backprop: by default its `λ` is
/// the optimiser's weight decay, so both decay `W` alike (and momentum is the same).
#[test]
fn kolen_pollack_from_b_equal_w_is_backprop_for_many_steps() {
    let lambda = 1e-3;
    let batches = digits_batches(32, 30);
    let bp = rules::build::<f32>(RuleKind::Backprop, &Default::default(), 32);
    let kp = rules::build::<f32>(RuleKind::KolenPollack, &Default::default(), 32);
    let kp = kp.as_ref();
    let mut a = build_model(&cfg(RuleKind::Backprop), [1, 8, 8], 10, bp.as_ref());
    let mut b = build_model(&cfg(RuleKind::KolenPollack), [1, 8, 8], 10, kp);
    for l in b.weight_layers_mut() {
        let p = l.params_mut();
        p.feedback = p.w.clone();
    }
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: lambda,
        decay_all: false,
    };
    let mut rng = nowt::rng(0, 3);
    for (step, (x, y)) in batches.iter().enumerate() {
        train_step(&mut a, bp.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
        train_step(&mut b, kp, &sgd, x, y, 0.05, &mut rng).unwrap();
        assert_eq!(bits(&a), bits(&b), "step {step}");
        // The first layer's B carries no error and is not updated.
        for l in b.weight_layers().iter().skip(1) {
            assert_eq!(l.params().w, l.params().feedback, "B left W at step {step}");
        }
    }
}

/// Under plain SGD, `W_t − B_t = (1 − ηλ)^t (W₀ − B₀)` whatever the task gradient; `λ = 0`
/// keeps the difference constant.
#[test]
fn kolen_pollack_shrinks_w_minus_b_by_one_minus_eta_lambda() {
    let (eta, steps) = (0.05, 25);
    let split = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    for lambda in [0.0, 0.01, 0.2] {
        let kp = KolenPollack {
            decay: Some(lambda),
        };
        let mut net = mlp::<f64>(
            64,
            &[20],
            10,
            ActivationKind::Tanh,
            &mut nowt::rng(1, 0),
            &mut nowt::rng(1, 1),
        );
        let b_first = net.weight_layers()[0].params().feedback.clone();
        let diff = |net: &Network<f64>| -> Vec<Tensor<f64>> {
            net.weight_layers()
                .iter()
                .skip(1)
                .map(|l| {
                    let mut d = l.params().w.clone();
                    d.zip_apply(&l.params().feedback, |w, b| w - b);
                    d
                })
                .collect()
        };
        let d0 = diff(&net);
        let sgd = Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay_all: false,
        };
        let mut rng = nowt::rng(0, 3);
        for t in 1..=steps {
            let idx: Vec<usize> = (t * 16..t * 16 + 16).collect();
            let (x, y) = split.train.batch(&idx).unwrap();
            train_step(&mut net, &kp, &sgd, &x.cast::<f64>(), &y, eta, &mut rng).unwrap();
            let factor = (1.0 - eta * lambda).powi(t as i32);
            for (d, d0) in diff(&net).iter().zip(&d0) {
                let mut expect = d0.clone();
                expect.apply(|v| v * factor);
                let err = d
                    .data()
                    .iter()
                    .zip(expect.data())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-12, "λ={lambda} step {t}: max deviation {err:e}");
            }
        }
        // The task gradient did move W (the identity is not trivially true); the first
        // layer's B, which carries no error, stayed as it was.
        assert!(net.weight_layers()[0].params().w != build_w0());
        assert_eq!(net.weight_layers()[0].params().feedback, b_first);
    }
}

fn build_w0() -> Tensor<f64> {
    mlp::<f64>(
        64,
        &[20],
        10,
        ActivationKind::Tanh,
        &mut nowt::rng(1, 0),
        &mut nowt::rng(1, 1),
    )
    .weight_layers()[0]
        .params()
        .w
        .clone()
}

/// A 30→20 linear layer (init std 0.7) with one weight exactly 0, where `sign W = 0`.
fn layer_with_a_zero_weight() -> Linear<f32> {
    let mut l = Linear::<f32>::new(
        "fc",
        30,
        20,
        0.7,
        &mut nowt::rng(5, 0),
        &mut nowt::rng(5, 1),
    );
    l.p.w.data_mut()[3] = 0.0;
    l
}

/// Sign symmetry's `M` is exactly `s · sign(W)`, with `s` the init std or `mean |W|`.
#[test]
fn sign_symmetry_matrix_is_scaled_sign_of_w() {
    let l = layer_with_a_zero_weight();
    for scale in [SignScale::InitStd, SignScale::MeanAbs] {
        let ss = SignSymmetry { scale };
        let m = Rule::<f32>::backward_matrix(&ss, &l.p).into_owned();
        let s = match scale {
            SignScale::InitStd => 0.7f32,
            SignScale::MeanAbs => {
                (l.p.w.data().iter().map(|v| v.abs() as f64).sum::<f64>() / 600.0) as f32
            }
        };
        for (&w, &mv) in l.p.w.data().iter().zip(m.data()) {
            let expect = if w > 0.0 {
                s
            } else if w < 0.0 {
                -s
            } else {
                0.0
            };
            assert_eq!(mv.to_bits(), expect.to_bits(), "w={w}");
        }
    }
}

/// frSF's and brSF's `M` is exactly `|B| ⊙ sign W` after their initialisation, with
/// `sign 0 = 0`.
#[test]
fn random_sign_matrix_is_magnitudes_times_sign_of_w() {
    let l = layer_with_a_zero_weight();
    for kind in [RuleKind::FixedRandomSign, RuleKind::BatchwiseRandomSign] {
        let rule = rules::build::<f32>(kind, &Default::default(), 8);
        let mut p = l.p.clone();
        let mut init = rules::FeedbackInit {
            classes: 20,
            rng: nowt::rng(5, 2),
        };
        rule.init_feedback(&mut p, &mut init);
        let m = rule.backward_matrix(&p).into_owned();
        for ((&w, &b), &mv) in p.w.data().iter().zip(l.p.feedback.data()).zip(m.data()) {
            let expect = if w > 0.0 {
                b.abs()
            } else if w < 0.0 {
                -b.abs()
            } else {
                0.0
            };
            assert_eq!(mv.to_bits(), expect.to_bits(), "{kind:?}: w={w}, b={b}");
        }
    }
}

/// DESIGN.md §5's facts about angles.
#[test]
fn angles_have_their_known_values() {
    let mut rng = nowt::rng(9, 0);
    let w: Tensor<f64> = Tensor::randn(&[1000, 1000], 1.0, &mut rng);
    assert_eq!(angle_deg(&w, &w), Some(0.0));
    assert!((angle_deg(&w, &w.map(|v| -v)).unwrap() - 180.0).abs() < 1e-6);
    let sign = w.map(|v| v.signum());
    let gauss = (2.0 / std::f64::consts::PI).sqrt().acos().to_degrees(); // 37.09°
    let a = angle_deg(&w, &sign).unwrap();
    assert!(
        (a - gauss).abs() < 0.1,
        "∠(W, sign W) = {a}° for Gaussian W, expected {gauss}°"
    );
    let u: Tensor<f64> = Tensor::from_vec(&[1_000_000], {
        use rand::Rng;
        (0..1_000_000)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect()
    });
    let a = angle_deg(&u, &u.map(|v| v.signum())).unwrap();
    assert!((a - 30.0).abs() < 0.1, "uniform: {a}°");
    let b: Tensor<f64> = Tensor::randn(&[1000, 1000], 1.0, &mut rng);
    assert!((angle_deg(&w, &b).unwrap() - 90.0).abs() < 0.5);
}

/// From `B = 0` with no decay, the mirror's `B` after `N` noise samples makes the angle
/// `arctan √(in / N)` with `W`.
#[test]
fn weight_mirror_follows_the_arctan_law() {
    let (inputs, outputs, batch) = (100, 50, 25);
    let mut layer = Linear::<f64>::new(
        "fc",
        inputs,
        outputs,
        0.1,
        &mut nowt::rng(2, 0),
        &mut nowt::rng(2, 1),
    );
    layer.p.feedback = Tensor::zeros(layer.p.w.shape());
    let cfg = MirrorConfig {
        lr: 1.0,
        decay: 0.0,
        batch_size: batch,
        init: MirrorInit::Zero,
        ..Default::default()
    };
    let mut rng = nowt::rng(2, 3);
    let mut samples = 0;
    let mut last = 90.0;
    for checkpoint in [100, 400, 1600, 6400, 25600] {
        while samples < checkpoint {
            mirror_step(&mut layer, &cfg, &mut rng);
            samples += batch;
        }
        let got = angle_deg(&layer.p.w, &layer.p.feedback).unwrap();
        let law = (inputs as f64 / samples as f64).sqrt().atan().to_degrees();
        assert!(
            (got - law).abs() < 0.05 * law,
            "N={samples}: ∠ = {got:.2}°, law {law:.2}°"
        );
        assert!(got < last);
        last = got;
    }
}

/// With decay the mirror settles at `B* = σ² W / λ_WM`, for a linear layer and for an
/// unpadded convolution (whose every output position is one noise vector: the scale must not
/// grow with the number of positions), under Gaussian and under uniform noise of variance σ²;
/// the two noises draw different `ξ`.
#[test]
fn weight_mirror_settles_at_sigma_squared_w_over_lambda() {
    use nowt::layers::{Conv2d, WeightLayer};
    use nowt::rules::MirrorNoise;
    let mut first_steps = Vec::new();
    for noise in [MirrorNoise::Gaussian, MirrorNoise::Uniform] {
        let layers: Vec<Box<dyn WeightLayer<f64>>> = vec![
            Box::new(Linear::<f64>::new(
                "fc",
                20,
                10,
                0.3,
                &mut nowt::rng(4, 0),
                &mut nowt::rng(4, 1),
            )),
            Box::new(Conv2d::<f64>::new(
                "conv",
                3,
                5,
                3,
                1,
                0,
                false,
                (10, 10),
                0.3,
                &mut nowt::rng(4, 0),
                &mut nowt::rng(4, 1),
            )),
        ];
        for (mut layer, batch) in layers.into_iter().zip([256, 8]) {
            let cfg = MirrorConfig {
                sigma: 0.5,
                lr: 0.02,
                decay: 0.5,
                batch_size: batch,
                noise,
                ..Default::default()
            };
            let mut rng = nowt::rng(4, 3);
            mirror_step(layer.as_mut(), &cfg, &mut rng);
            first_steps.push(layer.params().feedback.clone());
            for _ in 1..3000 {
                mirror_step(layer.as_mut(), &cfg, &mut rng);
            }
            let p = layer.params();
            let ratio = p.feedback.norm() / p.w.norm();
            assert!(
                (ratio - 0.25 / 0.5).abs() < 0.03,
                "{} ({noise:?}): ‖B‖/‖W‖ = {ratio}",
                p.name
            );
            assert!(
                angle_deg(&p.w, &p.feedback).unwrap() < 3.0,
                "{} ({noise:?})",
                p.name
            );
        }
    }
    assert_ne!(
        first_steps[0], first_steps[2],
        "uniform noise drew Gaussian ξ"
    );
    assert_ne!(
        first_steps[1], first_steps[3],
        "uniform noise drew Gaussian ξ"
    );
}

/// `U(−a, a)` draws stay inside `[−a, a)` and have variance `a²/3`.
#[test]
fn uniform_draws_have_the_right_range_and_variance() {
    let t = Tensor::<f64>::rand_uniform(&[50_000], 2.0, &mut nowt::rng(8, 0));
    assert!(t.data().iter().all(|v| (-2.0..2.0).contains(v)));
    let var = t.data().iter().map(|v| v * v).sum::<f64>() / t.len() as f64;
    assert!((var - 4.0 / 3.0).abs() < 0.03, "variance {var}");
    assert!(t.data().iter().any(|&v| v < -1.9) && t.data().iter().any(|&v| v > 1.9));
}

/// With zero padding, every kernel tap settles at `σ² / λ_WM` times its own weight: each tap
/// averages `ηᵀξ` over the noise vectors that reached it (border taps see fewer positions).
/// Per tap `t`, `B/W` is the least-squares slope `Σ B̄[·,·,t] W[·,·,t] / Σ W[·,·,t]²` of the
/// mirror's `B` averaged over 300 batches once settled.
#[test]
fn weight_mirror_settles_tap_by_tap_on_padded_convolutions() {
    use nowt::layers::{Conv2d, WeightLayer};
    // (kernel, stride, pad, plane side, noise images)
    let cases = [
        (3, 1, 1, 7, 8),
        (3, 1, 1, 8, 8),
        (3, 2, 1, 16, 8),
        (3, 1, 1, 32, 2),
        (1, 2, 0, 15, 8),
        (7, 2, 3, 32, 4),
        (7, 2, 3, 7, 128),
    ];
    for (k, stride, pad, side, batch) in cases {
        let mut layer = Conv2d::<f64>::new(
            "conv",
            3,
            6,
            k,
            stride,
            pad,
            false,
            (side, side),
            0.5,
            &mut nowt::rng(8, 0),
            &mut nowt::rng(8, 1),
        );
        let cfg = MirrorConfig {
            sigma: 0.5,
            lr: 0.05,
            decay: 0.5,
            batch_size: batch,
            ..Default::default()
        };
        let mut rng = nowt::rng(8, 3);
        for _ in 0..300 {
            mirror_step(&mut layer, &cfg, &mut rng);
        }
        let mut mean = Tensor::<f64>::zeros(layer.p.w.shape());
        for _ in 0..300 {
            mirror_step(&mut layer, &cfg, &mut rng);
            mean.zip_apply(&layer.p.feedback, |m, b| m + b / 300.0);
        }
        let taps = k * k;
        for t in 0..taps {
            let (mut bw, mut ww) = (0.0, 0.0);
            for (b, w) in mean
                .data()
                .iter()
                .zip(layer.p.w.data())
                .skip(t)
                .step_by(taps)
            {
                bw += b * w;
                ww += w * w;
            }
            let ratio = bw / ww;
            assert!(
                (ratio / 0.5 - 1.0).abs() < 0.02,
                "{k}×{k} stride {stride} pad {pad} on {side}×{side}: tap {t} settles at \
                 B/W = {ratio:.4}, not σ²/λ = 0.5 (reach {:?})",
                layer.tap_reach()
            );
        }
    }
}

/// A tap's reach counts the output positions at which it reads the image, by brute force.
#[test]
fn tap_reach_counts_positions_inside_the_image() {
    use nowt::tensor::ConvGeom;
    for (k, stride, pad, h, w) in [
        (3, 1, 1, 7, 9),
        (3, 2, 1, 16, 15),
        (7, 2, 3, 32, 7),
        (1, 2, 0, 5, 5),
    ] {
        let g = ConvGeom {
            c: 1,
            h,
            w,
            k,
            stride,
            pad,
        };
        let (ho, wo) = g.out_hw();
        let mut want = vec![0; k * k];
        for a in 0..k {
            for b in 0..k {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let (iy, ix) = (
                            (oy * stride + a) as isize - pad as isize,
                            (ox * stride + b) as isize - pad as isize,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            want[a * k + b] += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(
            g.tap_reach(),
            want,
            "{k}×{k} stride {stride} pad {pad} on {h}×{w}"
        );
    }
}

/// The weight mirror's training hooks change every weight layer's `B` but the first (which
/// carries no error) exactly as [`mirror_step`] does, layer by layer from one noise stream:
/// the warm-up's `warmup_batches` and each step's `batches_per_step`, on a network of linear,
/// convolution and projection-shortcut layers. Noise is drawn afresh for every layer.
#[test]
fn weight_mirror_hooks_mirror_every_layer_but_the_first() {
    let wm_cfg = MirrorConfig {
        batch_size: 4,
        warmup_batches: 3,
        batches_per_step: 2,
        ..Default::default()
    };
    let wm = rules::WeightMirror {
        cfg: wm_cfg.clone(),
    };
    let mut net = small_resnet(5);
    let feedback = |net: &Network<f32>| -> Vec<Tensor<f32>> {
        net.weight_layers()
            .iter()
            .map(|l| l.params().feedback.clone())
            .collect()
    };
    let b0 = feedback(&net);
    // By hand: the same noise stream, layer by layer, skipping the first.
    let mut expect = small_resnet(5);
    let mut rng = nowt::rng(0, 3);
    for _ in 0..3 {
        for l in expect.weight_layers_mut().into_iter().skip(1) {
            mirror_step(l, &wm_cfg, &mut rng);
        }
    }
    let mut rng_hook = nowt::rng(0, 3);
    Rule::<f32>::before_training(&wm, &mut net.weight_layers_mut(), &mut rng_hook);
    let after = feedback(&net);
    assert_eq!(after, feedback(&expect), "warm-up");
    assert_eq!(after[0], b0[0], "the first layer's B is not mirrored");
    for (i, (a, b)) in after.iter().zip(&b0).enumerate().skip(1) {
        assert_ne!(a, b, "layer {i}'s B unchanged by the warm-up");
    }
    for _ in 0..2 {
        for l in expect.weight_layers_mut().into_iter().skip(1) {
            mirror_step(l, &wm_cfg, &mut rng);
        }
    }
    Rule::<f32>::after_step(&wm, &mut net.weight_layers_mut(), &mut rng_hook);
    assert_eq!(feedback(&net), feedback(&expect), "after a step");
}

/// Mirror noise is drawn independently for every layer: two layers with the same `W` and `B`
/// end a mirror batch with different `B`.
#[test]
fn weight_mirror_noise_is_independent_across_layers() {
    let wm = rules::WeightMirror {
        cfg: MirrorConfig {
            batch_size: 16,
            ..Default::default()
        },
    };
    let mut net = mlp(
        6,
        &[6, 6, 6],
        6,
        ActivationKind::Relu,
        &mut nowt::rng(2, 0),
        &mut nowt::rng(2, 1),
    );
    let (w, b) = {
        let p = net.weight_layers()[1].params();
        (p.w.clone(), p.feedback.clone())
    };
    for l in net.weight_layers_mut().into_iter().skip(1).take(2) {
        l.params_mut().w = w.clone();
        l.params_mut().feedback = b.clone();
    }
    Rule::<f32>::after_step(&wm, &mut net.weight_layers_mut(), &mut nowt::rng(2, 3));
    let layers = net.weight_layers();
    assert_ne!(layers[1].params().feedback, b, "fc2 mirrored");
    assert_ne!(
        layers[1].params().feedback,
        layers[2].params().feedback,
        "fc2 and fc3 received the same noise"
    );
}

/// The records of one backprop pass through `net` on a random batch of `inputs` values each.
fn delta_records(mut net: Network<f32>, inputs: usize) -> DeltaRecord<f32> {
    let x = Tensor::randn(&[4, inputs], 1.0, &mut nowt::rng(0, 5));
    let outs = net.forward(&x, true);
    let delta = Tensor::randn(outs.last().unwrap().shape(), 1.0, &mut nowt::rng(0, 6));
    let mut rec = Vec::new();
    net.backward(&x, &outs, delta, None, &Backprop, Some(&mut rec));
    rec
}

/// The first weight layer computes no `δ_in`; the others do. Also where the network starts
/// with a layer without weights (LeNet-5's reshape of the flat input into an image).
#[test]
fn first_layer_skips_its_input_error() {
    let (mut w, mut b) = (nowt::rng(0, 0), nowt::rng(0, 1));
    let rec = delta_records(mlp(8, &[6], 3, ActivationKind::Relu, &mut w, &mut b), 8);
    // top to bottom: fc2 sends an error into the hidden layer, fc1 computes none
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0].0, "fc2");
    assert_eq!(rec[0].1.as_ref().unwrap().shape(), &[4, 6]);
    assert_eq!(rec[1].0, "fc1");
    assert!(rec[1].1.is_none());
    let rec = delta_records(nowt::models::lenet5([1, 28, 28], 10, &mut w, &mut b), 784);
    let names: Vec<&str> = rec.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["fc3", "fc2", "fc1", "conv2", "conv1"]);
    assert!(rec[..4].iter().all(|r| r.1.is_some()));
    assert!(rec[4].1.is_none(), "conv1 computed a δ_in");
}

/// Every listed rule parses by name and alias and builds.
#[test]
fn every_rule_is_listed_and_builds() {
    // Every knob names a real key of the `[rules]` config section (optional keys given).
    let defaults = serde_json::to_value(rules::RuleConfig {
        kp_decay: Some(0.0),
        ..Default::default()
    })
    .unwrap();
    for k in RuleKind::ALL {
        let info = k.info();
        assert_eq!(info.kind, k);
        assert_eq!(RuleKind::from_name(k.name()).unwrap(), k);
        for alias in info.aliases {
            assert_eq!(RuleKind::from_name(alias).unwrap(), k);
        }
        assert_eq!(rules::build::<f32>(k, &Default::default(), 8).kind(), k);
        assert_eq!(rules::build::<f64>(k, &Default::default(), 8).kind(), k);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{}\"", k.name()));
        assert_eq!(serde_json::from_str::<RuleKind>(&json).unwrap(), k);
        for knob in info.knobs {
            let found = knob
                .key
                .split('.')
                .try_fold(&defaults, |v, part| v.get(part));
            assert!(found.is_some(), "{}: no config key {}", k.name(), knob.key);
        }
    }
    let names: std::collections::HashSet<&str> = RuleKind::ALL
        .iter()
        .flat_map(|k| std::iter::once(k.name()).chain(k.info().aliases.iter().copied()))
        .collect();
    let count: usize = RuleKind::ALL
        .iter()
        .map(|k| 1 + k.info().aliases.len())
        .sum();
    assert_eq!(names.len(), count, "a name or alias is used twice");
    assert!(RuleKind::from_name("backpropagation")
        .unwrap_err()
        .to_string()
        .contains("kolen-pollack"));
}

/// The mirror works for convolutions at the layer's own input resolution: from `B = 0`, `B`
/// turns toward `W` as noise accumulates.
#[test]
fn weight_mirror_aligns_a_convolution() {
    use nowt::layers::Conv2d;
    let mut layer = Conv2d::<f64>::new(
        "conv",
        4,
        6,
        3,
        2,
        0,
        false,
        (9, 8),
        0.2,
        &mut nowt::rng(6, 0),
        &mut nowt::rng(6, 1),
    );
    layer.p.feedback = Tensor::zeros(layer.p.w.shape());
    let cfg = MirrorConfig {
        lr: 1.0,
        decay: 0.0,
        batch_size: 8,
        init: MirrorInit::Zero,
        ..Default::default()
    };
    let mut rng = nowt::rng(6, 3);
    let mut last = 90.0;
    for _ in 0..4 {
        for _ in 0..10 {
            mirror_step(&mut layer, &cfg, &mut rng);
        }
        let a = angle_deg(&layer.p.w, &layer.p.feedback).unwrap();
        assert!(a < last, "{a}° after {last}°");
        last = a;
    }
    assert!(last < 10.0, "∠(W, B) = {last}° after 320 noise images");
}

fn small_resnet(seed: u64) -> Network<f32> {
    small_resnet_with(seed, nowt::layers::Shortcut::Projection)
}

fn small_resnet_with(seed: u64, shortcut: nowt::layers::Shortcut) -> Network<f32> {
    nowt::models::resnet_cifar(
        8,
        [3, 8, 8],
        10,
        shortcut,
        &mut nowt::rng(seed, 0),
        &mut nowt::rng(seed, 1),
    )
}

fn image_batches(count: usize, batch: usize, dim: usize) -> Vec<(Tensor<f32>, Vec<u32>)> {
    let mut rng = nowt::rng(77, 0);
    (0..count)
        .map(|i| {
            (
                Tensor::randn(&[batch, dim], 1.0, &mut rng),
                (0..batch).map(|j| ((i + j) % 10) as u32).collect(),
            )
        })
        .collect()
}

fn all_bits(net: &Network<f32>) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = net
        .weight_layers()
        .iter()
        .map(|l| l.params().w.data().iter().map(|v| v.to_bits()).collect())
        .collect();
    out.extend(
        net.params()
            .iter()
            .map(|p| p.value.data().iter().map(|v| v.to_bits()).collect()),
    );
    out
}

/// Kolen-Pollack from `B₀ = W₀` is backprop bit for bit for every step of `batches`, and so is
/// one step of feedback alignment with `B := W`; with its random `B` it is not.
fn rule_oracles(make: impl Fn() -> Network<f32>, batches: &[(Tensor<f32>, Vec<u32>)]) {
    let lambda = 1e-3;
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: lambda,
        decay_all: false,
    };
    let kp = KolenPollack {
        decay: Some(lambda),
    };
    let fa = rules::build::<f32>(RuleKind::FeedbackAlignment, &Default::default(), 8);
    let (mut bp_net, mut kp_net, mut fa_net, mut fa_rand) = (make(), make(), make(), make());
    for net in [&mut kp_net, &mut fa_net] {
        for l in net.weight_layers_mut() {
            let p = l.params_mut();
            p.feedback = p.w.clone();
        }
    }
    let mut rng = nowt::rng(0, 3);
    for (step, (x, y)) in batches.iter().enumerate() {
        train_step(&mut bp_net, &Backprop, &sgd, x, y, 0.05, &mut rng).unwrap();
        train_step(&mut kp_net, &kp, &sgd, x, y, 0.05, &mut rng).unwrap();
        assert_eq!(
            all_bits(&bp_net),
            all_bits(&kp_net),
            "KP left backprop at step {step}"
        );
        if step == 0 {
            train_step(&mut fa_net, fa.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
            assert_eq!(all_bits(&bp_net), all_bits(&fa_net), "FA with B = W");
            train_step(&mut fa_rand, fa.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
            assert_ne!(all_bits(&bp_net), all_bits(&fa_rand), "FA with random B");
        }
    }
}

/// On a small CIFAR ResNet (convolutions, batch norm, projection shortcuts), for many steps.
#[test]
fn rule_oracles_hold_on_a_small_resnet() {
    assert!(small_resnet(1).weight_layers().len() >= 8);
    rule_oracles(|| small_resnet(1), &image_batches(22, 8, 192));
    // Option A's shortcuts carry the error past the rule seam with no weights of their own.
    let identity = || small_resnet_with(1, nowt::layers::Shortcut::Identity);
    assert_eq!(
        identity().weight_layers().len(),
        small_resnet(1).weight_layers().len() - 2
    );
    rule_oracles(identity, &image_batches(22, 8, 192));
}

/// On LeNet-5 (pooling, flatten, biases) and on an ImageNet ResNet-18 and ResNet-50
/// (7×7 stem, max pooling, Bottlenecks) at 32×32.
#[test]
fn rule_oracles_hold_on_lenet_and_imagenet_resnets() {
    let seeds = || (nowt::rng(1, 0), nowt::rng(1, 1));
    rule_oracles(
        || {
            let (mut w, mut b) = seeds();
            nowt::models::lenet5([1, 28, 28], 10, &mut w, &mut b)
        },
        &image_batches(5, 8, 784),
    );
    for depth in [18, 50] {
        rule_oracles(
            || {
                let (mut w, mut b) = seeds();
                nowt::models::resnet_imagenet(depth, [3, 32, 32], 10, &mut w, &mut b)
            },
            &image_batches(2, 4, 3072),
        );
    }
}

fn feedback_bits(net: &Network<f32>) -> Vec<Vec<u32>> {
    net.weight_layers()
        .iter()
        .map(|l| {
            l.params()
                .feedback
                .data()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

/// Feedback alignment's and frSF's `B` stay at their initialisation, and backprop and sign
/// symmetry never touch `B`: after training steps it is bitwise what it was (while `W` moved).
#[test]
fn training_leaves_b_unchanged_under_fa_frsf_ss_and_bp() {
    let batches = digits_batches(16, 6);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-3,
        decay_all: false,
    };
    for kind in [
        RuleKind::FeedbackAlignment,
        RuleKind::SignSymmetry,
        RuleKind::Backprop,
        RuleKind::FixedRandomSign,
    ] {
        let rule = rules::build::<f32>(kind, &Default::default(), 16);
        let mut net = build_model(&cfg(kind), [1, 8, 8], 10, rule.as_ref());
        let (b0, w0) = (feedback_bits(&net), bits(&net));
        let mut rng = nowt::rng(0, 3);
        for (x, y) in &batches {
            train_step(&mut net, rule.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
        }
        assert_eq!(feedback_bits(&net), b0, "{kind:?} changed B");
        assert_ne!(bits(&net), w0, "{kind:?}: W did not move");
    }
}

/// Feedback alignment's `B₀ ~ N(0, (s · init_std)²)`: the same draw scaled by `s`, with the
/// layer's init std at `s = 1`.
#[test]
fn feedback_alignment_b0_has_its_configured_scale() {
    let build = |s: f64| {
        let rc = rules::RuleConfig {
            fa_init_scale: s,
            ..Default::default()
        };
        let rule = rules::build::<f32>(RuleKind::FeedbackAlignment, &rc, 32);
        let c = TrainConfig {
            hidden: vec![400],
            rules: rc,
            ..cfg(RuleKind::FeedbackAlignment)
        };
        build_model(&c, [1, 8, 8], 10, rule.as_ref())
    };
    let (one, three) = (build(1.0), build(3.0));
    for (a, b) in one.weight_layers().iter().zip(three.weight_layers()) {
        let (a, b) = (a.params(), b.params());
        let n = a.feedback.len() as f64;
        let std = (a
            .feedback
            .data()
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(
            (std / a.init_std - 1.0).abs() < 0.1,
            "{}: std {std} vs init std {}",
            a.name,
            a.init_std
        );
        for (x, y) in a.feedback.data().iter().zip(b.feedback.data()) {
            assert!((3.0 * x - y).abs() <= 1e-6 * y.abs().max(1e-6), "{x} {y}");
        }
    }
}

/// The mirror's `B₀`: the same random draw as every rule's by default, zero under
/// `wm.init = "zero"` (built through the registry, as training builds it).
#[test]
fn weight_mirror_b0_is_random_or_zero_as_configured() {
    let build = |rule: RuleKind, init: MirrorInit| {
        let rc = rules::RuleConfig {
            wm: MirrorConfig {
                init,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = rules::build::<f32>(rule, &rc, 32);
        let c = TrainConfig {
            rules: rc,
            ..cfg(rule)
        };
        feedback_bits(&build_model(&c, [1, 8, 8], 10, r.as_ref()))
    };
    let random = build(RuleKind::FeedbackAlignment, MirrorInit::Random);
    assert_eq!(
        build(RuleKind::WeightMirror, MirrorInit::Random),
        random,
        "wm.init = random keeps B₀"
    );
    let zero = build(RuleKind::WeightMirror, MirrorInit::Zero);
    for (z, r) in zero.iter().zip(&random) {
        assert_eq!(z.len(), r.len());
        assert!(z.iter().all(|&b| b == 0), "wm.init = zero leaves B ≠ 0");
    }
}

/// The metrics on hand-made matrices: angles, `‖M‖/‖W‖` and sign concordance with known answers,
/// read back from [`layer_records`] of a two-layer network whose `B` is set by hand; and the
/// δ-angle against backprop's error computed here, independently: for the top layer
/// `δ_in = δ_logits · M` against `δ_logits · W`.
#[test]
fn layer_records_match_hand_made_answers() {
    use nowt::metrics::sign_concordance;
    use nowt::tensor::matmul;
    use nowt::train::layer_records;
    let a = Tensor::<f64>::from_vec(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]);
    let b = Tensor::<f64>::from_vec(&[2, 2], vec![0.0, 1.0, -1.0, 0.0]);
    assert!((angle_deg(&a, &b).unwrap() - 90.0).abs() < 1e-12);
    let c = Tensor::<f64>::from_vec(&[2], vec![1.0, 1.0]);
    let d = Tensor::<f64>::from_vec(&[2], vec![1.0, 0.0]);
    assert!((angle_deg(&c, &d).unwrap() - 45.0).abs() < 1e-12);
    assert_eq!(angle_deg(&c, &Tensor::zeros(&[2])), None);
    let e = Tensor::<f64>::from_vec(&[4], vec![1.0, -2.0, 3.0, -4.0]);
    let f = Tensor::<f64>::from_vec(&[4], vec![5.0, 2.0, 1.0, -1.0]);
    assert_eq!(sign_concordance(&e, &f), 0.75);

    let mut net = mlp::<f32>(
        6,
        &[5],
        4,
        ActivationKind::Relu,
        &mut nowt::rng(3, 0),
        &mut nowt::rng(3, 1),
    );
    // Top layer: B = 2W with the first row negated: ‖B‖/‖W‖ = 2, concordance 1 − 5/20.
    {
        let mut layers = net.weight_layers_mut();
        let p = layers[1].params_mut();
        let mut m = p.w.map(|v| 2.0 * v);
        for v in &mut m.data_mut()[..5] {
            *v = -*v;
        }
        p.feedback = m;
    }
    let (x, y) = digits_batches(8, 1)
        .into_iter()
        .next()
        .map(|(x, y)| {
            let x6 = Tensor::from_vec(
                &[8, 6],
                x.data().chunks(64).flat_map(|r| r[..6].to_vec()).collect(),
            );
            (x6, y.iter().map(|l| l % 4).collect::<Vec<u32>>())
        })
        .unwrap();
    let fa = rules::build::<f32>(RuleKind::FeedbackAlignment, &Default::default(), 8);
    let recs = layer_records(&mut net, fa.as_ref(), &x, &y);
    let (w, m) = {
        let p = net.weight_layers()[1].params();
        (p.w.clone(), p.feedback.clone())
    };
    let top = &recs[1];
    assert!((top.norm_ratio.unwrap() - 2.0).abs() < 1e-6, "{top:?}");
    assert!(
        (top.sign_concordance.unwrap() - 0.75).abs() < 1e-12,
        "{top:?}"
    );
    let want = angle_deg(&w, &m).unwrap();
    assert!((top.weight_angle_deg.unwrap() - want).abs() < 1e-9);
    assert!(want > 30.0, "the hand-made B is far from W ({want}°)");
    // Backprop's δ into the top layer, by hand.
    let logits = net.predict(&x, true);
    let (_, d) = softmax_cross_entropy(&logits, &y);
    let (d_rule, d_bp) = (matmul(&d, false, &m, false), matmul(&d, false, &w, false));
    let want = angle_deg(&d_rule, &d_bp).unwrap();
    let got = top.delta_angle_deg.unwrap();
    assert!(
        (got - want).abs() < 1e-3,
        "δ-angle {got}° vs {want}° by hand"
    );
    assert!(want > 5.0, "{want}");
    // The first layer's M carries no error: its fields are null.
    assert_eq!(
        (
            recs[0].weight_angle_deg,
            recs[0].delta_angle_deg,
            recs[0].norm_ratio
        ),
        (None, None, None)
    );
}

/// frSF and brSF: `M = |R| ⊙ sign W` has W's sign at every entry (concordance exactly 1) and
/// half-normal magnitudes, `E|M| = init_std·√(2/π)` and `E[M²] = init_std²`, unrelated to `|W|`;
/// frSF keeps its magnitudes through training, brSF redraws them every step (independent of the
/// last draw) and only for layers whose error is used.
#[test]
fn random_sign_concordant_feedback_has_signs_of_w_and_half_normal_magnitudes() {
    let batches = digits_batches(16, 3);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
        decay_all: false,
    };
    let c = |rule| TrainConfig {
        rule,
        hidden: vec![400, 300],
        seed: 5,
        ..Default::default()
    };
    let magnitudes = |net: &Network<f32>, i: usize| -> Vec<f64> {
        let p = net.weight_layers()[i].params();
        let fixed = rules::build::<f32>(RuleKind::FixedRandomSign, &Default::default(), 16);
        let m = fixed.backward_matrix(p);
        for (m, w) in m.data().iter().zip(p.w.data()) {
            assert_eq!(m.signum(), w.signum(), "sign M ≠ sign W");
        }
        m.data().iter().map(|m| m.abs() as f64).collect()
    };
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        (
            v.iter().sum::<f64>() / n,
            v.iter().map(|m| m * m).sum::<f64>() / n,
        )
    };
    for kind in [RuleKind::FixedRandomSign, RuleKind::BatchwiseRandomSign] {
        let rule = rules::build::<f32>(kind, &Default::default(), 16);
        let mut net = build_model(&c(kind), [1, 8, 8], 10, rule.as_ref());
        let std = net.weight_layers()[1].params().init_std;
        let first = feedback_bits(&net)[0].clone();
        let before = magnitudes(&net, 1);
        let mut rng = nowt::rng(0, 3);
        for (x, y) in &batches {
            train_step(&mut net, rule.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
        }
        let after = magnitudes(&net, 1);
        for m in [&before, &after] {
            let (mean, square) = moments(m);
            let law = std * (2.0 / std::f64::consts::PI).sqrt();
            assert!(
                (mean / law - 1.0).abs() < 0.01,
                "{kind:?}: E|M| {mean} vs {law}"
            );
            assert!(
                (square / (std * std) - 1.0).abs() < 0.02,
                "{kind:?}: E[M²] {square}"
            );
        }
        // Unrelated to |W|: the correlation of |M| and |W| is near zero.
        let w: Vec<f64> = net.weight_layers()[1]
            .params()
            .w
            .data()
            .iter()
            .map(|w| w.abs() as f64)
            .collect();
        let corr = |a: &[f64], b: &[f64]| {
            let (ma, mb) = (moments(a).0, moments(b).0);
            let cov: f64 = a.iter().zip(b).map(|(a, b)| (a - ma) * (b - mb)).sum();
            let va: f64 = a.iter().map(|a| (a - ma).powi(2)).sum();
            let vb: f64 = b.iter().map(|b| (b - mb).powi(2)).sum();
            cov / (va * vb).sqrt()
        };
        assert!(corr(&after, &w).abs() < 0.02, "{kind:?}: |M| follows |W|");
        let changed = after.iter().zip(&before).filter(|(a, b)| a != b).count();
        match kind {
            RuleKind::FixedRandomSign => assert_eq!(after, before, "frSF's magnitudes moved"),
            _ => {
                assert_eq!(changed, after.len(), "brSF kept some magnitudes");
                assert!(
                    corr(&after, &before).abs() < 0.02,
                    "brSF's draws are correlated"
                );
            }
        }
        // The first layer's feedback carries no error and is left alone by both.
        assert_eq!(
            feedback_bits(&net)[0],
            first,
            "{kind:?} touched the first layer's B"
        );
    }
}

/// Direct feedback alignment's `δ_in` on a lone layer given the output error `e`.
fn dfa_input_error<L: Layer<f64> + WeightLayer<f64>>(
    layer: &mut L,
    x: &Tensor<f64>,
    e: &Tensor<f64>,
) -> Tensor<f64> {
    let dfa = rules::build::<f64>(RuleKind::DirectFeedbackAlignment, &Default::default(), 4);
    let y = layer.forward(x, true);
    let delta = Tensor::randn(y.shape(), 1.0, &mut nowt::rng(4, 4));
    let mut ctx = Backward {
        rule: dfa.as_ref(),
        record: None,
        top: rules::Top {
            error: Some(e),
            target: None,
        },
    };
    let d = layer.backward(x, &y, &delta, &mut ctx, true).unwrap();
    // grad_W is the rule-independent `grad_W(x, δ_out)`: backprop's, bit for bit.
    let g = layer.params().grad_w.clone();
    layer.backward(x, &y, &delta, &mut Backward::new(&Backprop), true);
    assert_eq!(
        g.data(),
        layer.params().grad_w.data(),
        "grad_W depends on the rule"
    );
    d
}

/// DFA on a linear layer: `δ_in = e · D` exactly (a plain loop in `f64`), whatever `δ_out` is.
#[test]
fn direct_feedback_alignment_sends_e_through_d_on_a_linear_layer() {
    let (n, classes, inputs) = (4, 3, 7);
    let mut rng = nowt::rng(8, 0);
    let mut l = Linear::<f64>::new("fc", inputs, 5, 0.3, &mut rng, &mut nowt::rng(8, 1));
    let d = Tensor::randn(&[classes, inputs], 1.0, &mut rng);
    l.p.direct = Some(d.clone());
    let x = Tensor::randn(&[n, inputs], 1.0, &mut rng);
    let e = Tensor::randn(&[n, classes], 1.0, &mut rng);
    let got = dfa_input_error(&mut l, &x, &e);
    assert_eq!(got.shape(), &[n, inputs]);
    for i in 0..n {
        for j in 0..inputs {
            let want: f64 = (0..classes)
                .map(|k| e.data()[i * classes + k] * d.data()[k * inputs + j])
                .sum();
            assert!((got.data()[i * inputs + j] - want).abs() < 1e-12);
        }
    }
}

/// DFA on convolutions: `δ_in` is the input gradient of a convolution with kernel `D` of `e`
/// tiled over the output positions — against a loop nest and against the tiled tensor through
/// the layer's own transposed convolution (today's oracle, to rounding), for strides 1 and 2,
/// 1×1, 3×3 and 5×5 kernels, padded or not, odd and even planes (the taps that reach each
/// input row differ at the borders and between rows under stride 2).
#[test]
fn direct_feedback_alignment_conv_form_equals_a_loop_nest() {
    let (n, classes, c_in) = (2, 5, 3);
    let cases = [
        (3, 2, 1, 9),
        (1, 2, 0, 8),
        (3, 1, 1, 16),
        (5, 1, 2, 16),
        (5, 1, 0, 12),
        (3, 2, 0, 10),
        (7, 2, 3, 11),
    ];
    for (k, stride, pad, hw) in cases {
        let mut rng = nowt::rng(9, k as u64);
        let mut conv = Conv2d::<f64>::new(
            "conv",
            c_in,
            4,
            k,
            stride,
            pad,
            false,
            (hw, hw),
            0.3,
            &mut rng,
            &mut nowt::rng(9, 1),
        );
        let d = Tensor::randn(&[classes, c_in, k, k], 1.0, &mut rng);
        conv.p.direct = Some(d.clone());
        let x = Tensor::randn(&[n, c_in, hw, hw], 1.0, &mut rng);
        let e = Tensor::randn(&[n, classes], 1.0, &mut rng);
        let got = dfa_input_error(&mut conv, &x, &e);
        assert_eq!(got.shape(), x.shape());
        let ho = (hw + 2 * pad - k) / stride + 1;
        let mut want = vec![0f64; x.len()];
        for b in 0..n {
            for cls in 0..classes {
                for oi in 0..ho {
                    for oj in 0..ho {
                        for c in 0..c_in {
                            for a in 0..k {
                                for bb in 0..k {
                                    let (i, j) = (oi * stride + a, oj * stride + bb);
                                    if i < pad || j < pad || i - pad >= hw || j - pad >= hw {
                                        continue;
                                    }
                                    want[((b * c_in + c) * hw + i - pad) * hw + j - pad] += e
                                        .data()[b * classes + cls]
                                        * d.data()[((cls * c_in + c) * k + a) * k + bb];
                                }
                            }
                        }
                    }
                }
            }
        }
        let err = got
            .data()
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-10, "k {k} stride {stride} {hw}×{hw}: off by {err}");
        let y = conv.forward(&x, true);
        let tiled = rules::tile_output_error(&e, &y);
        let today = conv.input_error(&tiled, &d, x.shape());
        let err = got.zip_map(&today, |a, b| a - b).norm() / today.norm();
        assert!(
            err < 1e-12,
            "k {k} stride {stride} {hw}×{hw}: {err:e} from the tiled form"
        );
        // `dfa_spread`: each position's share of e, as the tiled e / (H_o·W_o).
        let spread = rules::build::<f64>(
            RuleKind::DirectFeedbackAlignment,
            &rules::RuleConfig {
                dfa_spread: true,
                ..Default::default()
            },
            4,
        );
        let mut ctx = Backward {
            rule: spread.as_ref(),
            record: None,
            top: rules::Top {
                error: Some(&e),
                target: None,
            },
        };
        let shared = conv.backward(&x, &y, &y, &mut ctx, true).unwrap();
        let tiled = tiled.map(|v| v / (ho * ho) as f64);
        let today = conv.input_error(&tiled, &d, x.shape());
        let err = shared.zip_map(&today, |a, b| a - b).norm() / today.norm();
        assert!(
            err < 1e-12,
            "spread, k {k} stride {stride} {hw}×{hw}: {err:e}"
        );
    }
}

/// On a one-hidden-layer network the output layer's `D` is the whole downstream Jacobian's
/// stand-in: with `D := W₂` (the true Jacobian of the logits by the hidden layer) DFA is
/// backprop bit for bit, step after step; with its random `D` it is not.
#[test]
fn direct_feedback_alignment_with_the_true_jacobian_is_backprop() {
    let batches = digits_batches(16, 4);
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
        decay_all: false,
    };
    let c = TrainConfig {
        hidden: vec![24],
        ..cfg(RuleKind::DirectFeedbackAlignment)
    };
    let dfa = rules::build::<f32>(RuleKind::DirectFeedbackAlignment, &Default::default(), 16);
    let mut bp = build_model(&c, [1, 8, 8], 10, &Backprop);
    let mut true_d = build_model(&c, [1, 8, 8], 10, dfa.as_ref());
    let mut random_d = build_model(&c, [1, 8, 8], 10, dfa.as_ref());
    let mut rng = nowt::rng(0, 3);
    for (step, (x, y)) in batches.iter().enumerate() {
        for l in true_d.weight_layers_mut().into_iter().skip(1) {
            let p = l.params_mut();
            p.direct = Some(p.w.clone());
        }
        train_step(&mut bp, &Backprop, &sgd, x, y, 0.05, &mut rng).unwrap();
        train_step(&mut true_d, dfa.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
        assert_eq!(bits(&bp), bits(&true_d), "step {step}");
    }
    train_step(
        &mut random_d,
        dfa.as_ref(),
        &sgd,
        &batches[0].0,
        &batches[0].1,
        0.05,
        &mut rng,
    )
    .unwrap();
    let mut bp1 = build_model(&c, [1, 8, 8], 10, &Backprop);
    train_step(
        &mut bp1,
        &Backprop,
        &sgd,
        &batches[0].0,
        &batches[0].1,
        0.05,
        &mut rng,
    )
    .unwrap();
    assert_ne!(bits(&bp1), bits(&random_d));
}

/// DFA's `D` is drawn at build time from the rule's own stream, `N(0, (s · init_std)²)` with
/// the layer's `W` shape but `classes` rows, not from `B`'s stream, and neither `D` nor `B`
/// changes in training.
#[test]
fn direct_feedback_alignment_draws_d_once_with_its_scale() {
    let build = |s: f64| {
        let rc = rules::RuleConfig {
            dfa_init_scale: s,
            ..Default::default()
        };
        let rule = rules::build::<f32>(RuleKind::DirectFeedbackAlignment, &rc, 16);
        (
            build_model(
                &cfg(RuleKind::DirectFeedbackAlignment),
                [1, 8, 8],
                10,
                rule.as_ref(),
            ),
            rule,
        )
    };
    let direct = |net: &Network<f32>| -> Vec<Tensor<f32>> {
        net.weight_layers()
            .iter()
            .map(|l| l.params().direct.clone().unwrap())
            .collect()
    };
    let (one, _) = build(1.0);
    let (three, _) = build(3.0);
    for (l, (d1, d3)) in one
        .weight_layers()
        .iter()
        .zip(direct(&one).iter().zip(direct(&three)))
    {
        let p = l.params();
        let mut shape = p.w.shape().to_vec();
        shape[0] = 10;
        assert_eq!(d1.shape(), &shape[..], "{}", p.name);
        let std =
            (d1.data().iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / d1.len() as f64).sqrt();
        assert!(
            (std / p.init_std - 1.0).abs() < 0.1,
            "{}: std {std}",
            p.name
        );
        for (a, b) in d1.data().iter().zip(d3.data()) {
            assert!((a * 3.0 - b).abs() <= 1e-6 * b.abs().max(1e-6));
        }
    }
    // Not B: a stream of its own.
    let b_bits: Vec<u32> = one.weight_layers()[1].params().feedback.data()[..10]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let d_bits: Vec<u32> = direct(&one)[1].data()[..10]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_ne!(b_bits, d_bits);
    let (mut net, rule) = build(1.0);
    let (d0, b0, w0) = (direct(&net), feedback_bits(&net), bits(&net));
    let sgd = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-3,
        decay_all: false,
    };
    let mut rng = nowt::rng(0, 3);
    for (x, y) in &digits_batches(16, 4) {
        train_step(&mut net, rule.as_ref(), &sgd, x, y, 0.05, &mut rng).unwrap();
    }
    assert_eq!(feedback_bits(&net), b0, "B changed");
    assert_ne!(bits(&net), w0, "W did not move");
    for (a, b) in direct(&net).iter().zip(&d0) {
        assert_eq!(a.data(), b.data(), "D changed");
    }
}

/// Symmetric alignment on a frozen `W`: `B − βW/(2α)` shrinks by exactly `(1 − 2η_B α)` per
/// step at every layer but the first (whose `B` is untouched), so `∠(W, B)` falls toward 0.
#[test]
fn symmetric_alignment_drives_b_to_beta_w_over_two_alpha_on_a_frozen_w() {
    let rc = rules::RuleConfig {
        sa: rules::SymmetricConfig {
            lr: 0.05,
            alpha: 0.4,
            beta: 2.0,
        },
        ..Default::default()
    };
    let sa = rules::build::<f64>(RuleKind::SymmetricAlignment, &rc, 16);
    let mut net = build_model(
        &cfg(RuleKind::SymmetricAlignment),
        [1, 8, 8],
        10,
        sa.as_ref(),
    );
    let target = |w: &Tensor<f64>| w.map(|v| v * 2.0 / (2.0 * 0.4));
    let gap = |net: &Network<f64>| -> Vec<Tensor<f64>> {
        net.weight_layers()
            .iter()
            .map(|l| {
                l.params()
                    .feedback
                    .zip_map(&target(&l.params().w), |b, t| b - t)
            })
            .collect()
    };
    let (g0, b0) = (gap(&net), net.weight_layers()[0].params().feedback.clone());
    let mut rng = nowt::rng(0, 0);
    let mut last = 90.0;
    for t in 1..=150 {
        sa.after_step(&mut net.weight_layers_mut(), &mut rng);
        let factor = (1.0 - 2.0 * 0.05 * 0.4f64).powi(t);
        for (l, (g, g0)) in net
            .weight_layers()
            .iter()
            .zip(gap(&net).iter().zip(&g0))
            .skip(1)
        {
            let want = g0.map(|v| v * factor);
            let err = g.zip_map(&want, |a, b| a - b).norm() / want.norm();
            assert!(err < 1e-9, "{} step {t}: off by {err}", l.params().name);
        }
        let p = net.weight_layers()[1].params();
        let a = angle_deg(&p.w, &p.feedback).unwrap();
        assert!(a < last, "step {t}: {a}° after {last}°");
        last = a;
    }
    assert!(last < 1.0, "∠(W, B) = {last}° after 150 steps");
    assert_eq!(net.weight_layers()[0].params().feedback.data(), b0.data());
}

/// A noise rule's step against its objective's gradient, tap by tap, on a linear layer and on
/// padded convolutions (stride 1 and 2, 1×1): `ΔB` at tap `t` must be `−(η_B / r_t) · ∂R/∂B`,
/// `R(B)` the rule's objective on the step's own noise (`N = 3` samples of `σ = 0.7`, drawn from
/// `nowt::rng(seed, 0)` as the step draws them), the derivative by central differences in `f64`
/// (every `R` here is quadratic in `B`, so they are exact up to rounding). `objective` is given
/// the layer, `ξ`, `r = W ξ` and the candidate `B`.
fn noise_step_is_objective_gradient(
    seed: u64,
    lr: f64,
    step: impl Fn(&mut dyn WeightLayer<f64>, &mut nowt::Rng),
    objective: impl Fn(&dyn WeightLayer<f64>, &Tensor<f64>, &Tensor<f64>, &Tensor<f64>) -> f64,
) {
    let (mut rw, mut rb) = (nowt::rng(seed + 1, 0), nowt::rng(seed + 1, 1));
    let mut layers: Vec<(Box<dyn WeightLayer<f64>>, String)> = vec![(
        Box::new(Linear::new("fc", 5, 4, 0.5, &mut rw, &mut rb)),
        "linear 5→4".into(),
    )];
    for (k, stride, pad, side) in [(3, 1, 1, 5), (3, 2, 1, 6), (1, 1, 0, 4)] {
        let conv = Conv2d::new(
            "conv",
            2,
            3,
            k,
            stride,
            pad,
            false,
            (side, side),
            0.5,
            &mut rw,
            &mut rb,
        );
        let what = format!("{k}×{k} stride {stride} pad {pad} on {side}×{side}");
        layers.push((Box::new(conv), what));
    }
    for (mut layer, what) in layers {
        let rng = nowt::rng(seed, 0);
        let xi: Tensor<f64> = nowt::noise::gaussian(&layer.input_shape(3), 0.7, &mut rng.clone());
        let r = layer.linear(&xi, &layer.params().w);
        let b0 = layer.params().feedback.clone();
        let reach = layer.tap_reach();
        let mut want = Tensor::<f64>::zeros(b0.shape());
        for i in 0..b0.len() {
            let (mut plus, mut minus) = (b0.clone(), b0.clone());
            plus.data_mut()[i] += 1e-4;
            minus.data_mut()[i] -= 1e-4;
            let grad =
                (objective(&*layer, &xi, &r, &plus) - objective(&*layer, &xi, &r, &minus)) / 2e-4;
            want.data_mut()[i] = -lr / reach[i % reach.len()] as f64 * grad;
        }
        step(&mut *layer, &mut rng.clone());
        let got = layer.params().feedback.zip_map(&b0, |b, b0| b - b0);
        let err = got.zip_map(&want, |a, b| a - b).norm() / want.norm();
        assert!(err < 1e-7, "{what}: ΔB off −η_B ∂R/∂B / r_t by {err:.2e}");
    }
}

/// `r · s`, summed over every entry.
fn dot(r: &Tensor<f64>, s: &Tensor<f64>) -> f64 {
    r.data().iter().zip(s.data()).map(|(r, s)| r * s).sum()
}

/// Information alignment's noise step, with `γ = 0`, is its objective's gradient tap by tap:
/// `R = (1/N) Σ_n [−α (W ξ_n)·(B ξ_n) + β ‖r_n B‖²]`, `B ξ` formed by the layer's forward with
/// `W := B` and `r B` by its transpose (both proven by the gradient checks).
#[test]
fn information_alignment_step_is_its_objectives_gradient_tap_by_tap() {
    use nowt::rules::{information_step, InformationConfig};
    let cfg = InformationConfig {
        sigma: 0.7,
        lr: 0.03,
        alpha: 1.3,
        beta: 0.4,
        gamma: 0.0,
        batch_size: 3,
        warmup_batches: 0,
    };
    noise_step_is_objective_gradient(
        21,
        cfg.lr,
        |layer, rng| information_step(layer, &cfg, rng),
        |layer, xi, r, b| {
            let x_hat = layer.input_error(r, b, xi.shape());
            (-cfg.alpha * dot(r, &layer.linear(xi, b)) + cfg.beta * x_hat.norm().powi(2)) / 3.0
        },
    );
}

/// Activation alignment's noise step is its objective's gradient tap by tap:
/// `R = (1/N) Σ_n [α ‖B ξ_n‖² − β (W ξ_n)·(B ξ_n)]` (`‖W ξ‖²` does not depend on `B`), `B ξ`
/// formed by the layer's `linear` through `B`.
#[test]
fn activation_alignment_step_is_its_objectives_gradient_tap_by_tap() {
    use nowt::rules::{activation_step, ActivationConfig};
    let cfg = ActivationConfig {
        sigma: 0.7,
        lr: 0.03,
        alpha: 0.3,
        beta: 1.7,
        batch_size: 3,
        warmup_batches: 0,
    };
    noise_step_is_objective_gradient(
        23,
        cfg.lr,
        |layer, rng| activation_step(layer, &cfg, rng),
        |layer, xi, r, b| {
            let s = layer.linear(xi, b);
            (cfg.alpha * s.norm().powi(2) - cfg.beta * dot(r, &s)) / 3.0
        },
    );
}

/// The noise rules' `batch_size = 0` means the training batch: built from the registry for a
/// training batch of 16, the mirror, information and activation alignment each step `B` bit for
/// bit as the rule built with 16 noise samples a batch (a rule left at `N = 1` would not).
#[test]
fn noise_batch_size_zero_is_the_training_batch() {
    use nowt::rules::{
        ActivationAlignment, ActivationConfig, InformationAlignment, InformationConfig,
        WeightMirror,
    };
    let explicit: [(RuleKind, Box<dyn Rule<f32>>); 3] = [
        (
            RuleKind::WeightMirror,
            Box::new(WeightMirror {
                cfg: MirrorConfig {
                    batch_size: 16,
                    ..Default::default()
                },
            }),
        ),
        (
            RuleKind::InformationAlignment,
            Box::new(InformationAlignment {
                cfg: InformationConfig {
                    batch_size: 16,
                    ..Default::default()
                },
            }),
        ),
        (
            RuleKind::ActivationAlignment,
            Box::new(ActivationAlignment {
                cfg: ActivationConfig {
                    batch_size: 16,
                    ..Default::default()
                },
            }),
        ),
    ];
    for (kind, want) in explicit {
        let step = |rule: &dyn Rule<f32>| {
            let mut n = build_model(&cfg(kind), [1, 8, 8], 10, rule);
            rule.after_step(&mut n.weight_layers_mut(), &mut nowt::rng(3, 0));
            feedback_bits(&n)
        };
        let built = rules::build::<f32>(kind, &Default::default(), 16);
        assert!(
            step(built.as_ref()) == step(want.as_ref()),
            "{kind:?}: B after a noise batch differs from the rule with N = 16"
        );
    }
}

/// The noise rules' warm-up: `before_training` with `warmup_batches = 2` moves every `B` but the
/// first layer's, and leaves them bit for bit where two per-step noise batches from the same
/// stream do (a warm-up that does nothing, or something else, fails).
#[test]
fn noise_rules_warm_up_is_their_noise_batches() {
    use nowt::rules::{ActivationConfig, InformationConfig, RuleConfig};
    let c = RuleConfig {
        wm: MirrorConfig {
            warmup_batches: 2,
            ..Default::default()
        },
        ia: InformationConfig {
            warmup_batches: 2,
            ..Default::default()
        },
        aa: ActivationConfig {
            warmup_batches: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    for kind in [
        RuleKind::WeightMirror,
        RuleKind::InformationAlignment,
        RuleKind::ActivationAlignment,
    ] {
        let rule = rules::build::<f32>(kind, &c, 16);
        let (mut warm, mut stepped) = (
            build_model(&cfg(kind), [1, 8, 8], 10, rule.as_ref()),
            build_model(&cfg(kind), [1, 8, 8], 10, rule.as_ref()),
        );
        let b0 = feedback_bits(&warm);
        rule.before_training(&mut warm.weight_layers_mut(), &mut nowt::rng(4, 0));
        let mut rng = nowt::rng(4, 0);
        for _ in 0..2 {
            rule.after_step(&mut stepped.weight_layers_mut(), &mut rng);
        }
        let b = feedback_bits(&warm);
        assert!(
            b == feedback_bits(&stepped),
            "{kind:?}: warm-up ≠ 2 noise batches"
        );
        assert!(b[0] == b0[0], "{kind:?}: the first layer's B moved");
        for (l, (now, then)) in b.iter().zip(&b0).enumerate().skip(1) {
            assert!(
                now != then,
                "{kind:?}: layer {l}'s B did not move in the warm-up"
            );
        }
    }
}

/// A run stopped part-way through its warm-up (after 3 of 5 noise batches) has its `B` and
/// noise stream back as before the warm-up and is not warmed up; started again it runs the
/// whole warm-up and reaches its first step with the `B` and stream of a run never stopped.
#[test]
fn a_warm_up_stopped_part_way_is_undone_and_redone_whole() {
    use nowt::train::{train_from, ControlFlow, Event, Outcome, TrainState};
    let data = data::load(DatasetKind::Digits, None, &Default::default()).unwrap();
    let mut cfg = cfg(RuleKind::WeightMirror);
    cfg.rules.wm.warmup_batches = 5;
    let (shape, classes) = (data.train.shape, data.train.classes);
    // To the first step: the warm-up's events seen, and the state there.
    let to_first_step = |st: &mut TrainState, stop_at: Option<usize>| {
        let mut seen = Vec::new();
        let outcome = train_from(&cfg, &data, st, &mut |ev| match ev {
            Event::WarmUp { done, batches } => {
                seen.push((done, batches));
                if Some(done) == stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            Event::Started { .. } => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .unwrap();
        assert!(matches!(outcome, Outcome::Stopped));
        seen
    };
    let mut once = TrainState::new(&cfg, shape, classes);
    let (b0, rng0) = (feedback_bits(&once.net), once.rng_mirror.clone());
    assert_eq!(
        to_first_step(&mut once, None),
        (0..5).map(|d| (d, 5)).collect::<Vec<_>>()
    );
    assert!(once.warmed_up && feedback_bits(&once.net) != b0);

    let mut stopped = TrainState::new(&cfg, shape, classes);
    assert_eq!(to_first_step(&mut stopped, Some(3)).len(), 4);
    assert!(!stopped.warmed_up);
    assert!(feedback_bits(&stopped.net) == b0, "B not put back");
    assert!(stopped.rng_mirror == rng0, "the noise stream not put back");
    assert_eq!(to_first_step(&mut stopped, None).len(), 5);
    assert!(feedback_bits(&stopped.net) == feedback_bits(&once.net));
    assert!(stopped.rng_mirror == once.rng_mirror);
}
