//! `init = "xavier-uniform"` (BioTorch's protocol): `W` and `B` of every weight layer are drawn
//! from `U(−a, a)`, `a = √(6 / (fan_in + fan_out))`, with PyTorch's fans; `W₀` is the same under
//! every rule; the rules that draw feedback of their own (DFA's `D`, the random-sign
//! magnitudes) draw it from the same family; sign symmetry's scale is Xavier's std. `he` (the
//! default) leaves the models as they were.

use nowt::config::{ModelKind, TrainConfig};
use nowt::models::Network;
use nowt::params::Init;
use nowt::rules::{self, RuleKind};
use nowt::tensor::Tensor;
use nowt::train::build_model;

fn config(model: ModelKind, rule: RuleKind, init: Init) -> TrainConfig {
    TrainConfig {
        model: model.into(),
        rule,
        init,
        hidden: vec![64, 32],
        seed: 4,
        ..Default::default()
    }
}

/// The network of `model` (on 3×32×32 images, 10 classes) under `rule` and `init`.
fn net(model: ModelKind, rule: RuleKind, init: Init) -> Network<f32> {
    build(&config(model, rule, init))
}

/// The network `cfg` describes, on 3×32×32 images, 10 classes.
fn build(cfg: &TrainConfig) -> Network<f32> {
    let r = rules::build::<f32>(cfg.rule, &cfg.rules, 8);
    build_model(cfg, [3, 32, 32], 10, r.as_ref())
}

/// `(max |x|, std)` of a tensor's entries.
fn spread(t: &Tensor<f32>) -> (f64, f64) {
    let max = t.data().iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    (max, t.norm() / (t.len() as f64).sqrt())
}

/// The entries' std within 10 % of `std` (tensors of ≥ 400 entries; smaller ones are not checked).
fn assert_std(t: &Tensor<f32>, std: f64, what: &str) {
    let got = spread(t).1;
    if t.len() >= 400 {
        assert!(
            (got / std - 1.0).abs() < 0.1,
            "{what}: std {got}, want {std}"
        );
    }
}

/// Every entry within `±a` and the entries' std within 10 % of `a/√3` ([`assert_std`]).
fn assert_uniform(t: &Tensor<f32>, std: f64, what: &str) {
    let a = 3f64.sqrt() * std;
    let max = spread(t).0;
    assert!(max <= a * (1.0 + 1e-6), "{what}: |x| up to {max}, a = {a}");
    assert!(max > 0.9 * a, "{what}: |x| only up to {max}, a = {a}");
    assert_std(t, std, what);
}

#[test]
fn xavier_uniform_draws_w_and_b_at_xaviers_scale_for_every_model() {
    for model in [ModelKind::Mlp, ModelKind::Lenet5, ModelKind::Resnet20] {
        let n = net(model, RuleKind::FeedbackAlignment, Init::XavierUniform);
        for l in n.weight_layers() {
            let p = l.params();
            let s = p.w.shape();
            let k: usize = s[2..].iter().product();
            let std = (2.0 / ((s[0] + s[1]) * k) as f64).sqrt();
            assert_eq!(p.init, Init::XavierUniform);
            assert!((p.init_std / std - 1.0).abs() < 1e-12, "{}", p.name);
            assert_uniform(&p.w, std, &format!("{model:?} {} W", p.name));
            assert_uniform(&p.feedback, std, &format!("{model:?} {} B", p.name));
            assert_ne!(p.w, p.feedback, "{}: B is drawn apart from W", p.name);
            if let Some(b) = &p.bias {
                assert!(b.data().iter().all(|&x| x == 0.0), "{}: bias 0", p.name);
            }
        }
    }
}

#[test]
fn w0_is_the_same_under_every_rule_and_he_is_unchanged() {
    let weights = |n: &Network<f32>| -> Vec<Tensor<f32>> {
        n.weight_layers()
            .iter()
            .map(|l| l.params().w.clone())
            .collect()
    };
    for init in [Init::He, Init::XavierUniform] {
        let bp = weights(&net(ModelKind::Lenet5, RuleKind::Backprop, init));
        for &rule in &RuleKind::ALL {
            assert_eq!(
                weights(&net(ModelKind::Lenet5, rule, init)),
                bp,
                "{rule:?} {init:?}"
            );
        }
    }
    // He is the models' own draw: the layers keep the scale they were built with.
    let he = net(ModelKind::Mlp, RuleKind::Backprop, Init::He);
    let xavier = net(ModelKind::Mlp, RuleKind::Backprop, Init::XavierUniform);
    for (a, b) in he.weight_layers().iter().zip(xavier.weight_layers()) {
        assert_eq!(a.params().init, Init::He);
        let fan_in = a.params().w.shape()[1] as f64;
        assert!((a.params().init_std - (2.0 / fan_in).sqrt()).abs() < 1e-12);
        assert_ne!(a.params().w, b.params().w);
    }
}

/// DFA's `D: [classes, C_in, kh, kw]` is Xavier-uniform for its own shape; frSF's and brSF's
/// magnitudes are `|U(−a, a)|` at the layer's scale (brSF's redrawn so after a step); sign
/// symmetry's `M` is `√(2/(fan_in + fan_out)) · sign W`.
#[test]
fn the_rules_own_feedback_follows_xavier_uniform() {
    let dfa = net(
        ModelKind::Lenet5,
        RuleKind::DirectFeedbackAlignment,
        Init::XavierUniform,
    );
    for l in dfa.weight_layers() {
        let d = l.params().direct.as_ref().expect("D");
        let s = d.shape();
        let k: usize = s[2..].iter().product();
        let std = (2.0 / ((s[0] + s[1]) * k) as f64).sqrt();
        assert_uniform(d, std, &format!("DFA {} D", l.params().name));
    }
    for rule in [RuleKind::FixedRandomSign, RuleKind::BatchwiseRandomSign] {
        let mut n = net(ModelKind::Lenet5, rule, Init::XavierUniform);
        let r = rules::build::<f32>(rule, &Default::default(), 8);
        r.after_step(&mut n.weight_layers_mut(), &mut nowt::rng(1, 2));
        for l in n.weight_layers().iter().skip(1) {
            let p = l.params();
            assert!(p.feedback.data().iter().all(|&b| b >= 0.0), "{rule:?}");
            // |U(−a, a)| has the same second moment as U(−a, a).
            assert_uniform(&p.feedback, p.init_std, &format!("{rule:?} {}", p.name));
        }
    }
    let n = net(ModelKind::Mlp, RuleKind::SignSymmetry, Init::XavierUniform);
    let ss = rules::build::<f32>(RuleKind::SignSymmetry, &Default::default(), 8);
    let p = n.weight_layers()[1].params();
    let m = ss.backward_matrix(p);
    let want = p.w.map(|w| w.signum() * (2.0f32 / (64 + 32) as f32).sqrt());
    assert_eq!(m.as_ref(), &want);
}

#[test]
fn bias_init_starts_every_weight_layers_bias_there_and_changes_nothing_else() {
    for model in [ModelKind::LenetBiotorch, ModelKind::Mlp] {
        let rule = RuleKind::DirectFeedbackAlignment;
        let plain = config(model, rule, Init::XavierUniform);
        let ones = TrainConfig {
            bias_init: 1.0,
            ..plain.clone()
        };
        let (a, b) = (build(&plain), build(&ones));
        let mut biases = 0;
        for (la, lb) in a.weight_layers().iter().zip(b.weight_layers()) {
            let (pa, pb) = (la.params(), lb.params());
            assert_eq!(pa.w, pb.w, "{}: W₀ unchanged", pa.name);
            assert_eq!(pa.feedback, pb.feedback, "{}: B₀ unchanged", pa.name);
            if let Some(bias) = &pb.bias {
                assert!(bias.data().iter().all(|&x| x == 1.0), "{}: bias 1", pb.name);
                biases += 1;
            }
        }
        assert_eq!(
            biases,
            a.weight_layers().len(),
            "{model:?}: every layer has a bias"
        );
    }
    let bad = TrainConfig {
        bias_init: f64::NAN,
        ..Default::default()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("bias_init"), "{err}");
}

/// Product feedback alignment's `R: [r·out, in(, kh, kw)]` is drawn as `W` is, with `R`'s own
/// fans under Xavier, and its fixed `P: [out, r·out]` with variance `1/(r·out)` (so that
/// `E[PPᵀ] = I`), each from its family (Gaussian under He, uniform under Xavier), on linear and
/// convolutional layers.
#[test]
fn product_feedback_alignment_draws_r_and_p_at_their_scales() {
    let r = 3;
    for init in [Init::He, Init::XavierUniform] {
        let mut cfg = config(ModelKind::Lenet5, RuleKind::ProductFeedbackAlignment, init);
        cfg.rules.pfa_expand = r;
        let n = build(&cfg);
        for l in n.weight_layers() {
            let p = l.params();
            let (out, mid) = (p.w.shape()[0], r * p.w.shape()[0]);
            let mut r_shape = p.w.shape().to_vec();
            r_shape[0] = mid;
            assert_eq!(p.feedback.shape(), &r_shape[..], "{}: R's shape", p.name);
            let fixed = p.direct.as_ref().expect("P");
            assert_eq!(fixed.shape(), &[out, mid], "{}: P's shape", p.name);
            let what = |m: &str| format!("{init:?} {} {m}", p.name);
            let r_std = match init {
                Init::He => p.init_std,
                Init::XavierUniform => Init::xavier_std(&r_shape),
            };
            let p_std = (1.0 / mid as f64).sqrt();
            for (t, std, m) in [(&p.feedback, r_std, "R"), (fixed, p_std, "P")] {
                match init {
                    Init::XavierUniform => assert_uniform(t, std, &what(m)),
                    Init::He => assert_std(t, std, &what(m)),
                }
            }
        }
    }
}
