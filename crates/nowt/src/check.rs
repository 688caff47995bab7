//! The exact oracles of DESIGN.md §6, runnable on a user's machine and build (`nowt check`):
//! a researcher who changes a kernel, a flag or a compiler proves in seconds that every rule
//! still does what its equation says. Each check runs on a tiny, seeded instance of a model, in
//! `f64` where it compares against calculus and in `f32` where it compares bit for bit:
//!
//! - **gradient** (per model): under backprop, every weight layer's `grad_W` equals central
//!   differences of the loss (training-mode batch norm), at sampled entries;
//! - **fa-control** (per model): feedback alignment with `B := W` is backprop bit for bit for
//!   one step, and with its random `B` it is not (the negative control);
//! - **kp-identity** (per model): Kolen-Pollack from `B₀ = W₀` is backprop bit for bit for
//!   several steps;
//! - **kp-adamw** (per model): under AdamW Kolen-Pollack's `W − B` shrinks by `(1 − ηλ)` every
//!   step (its `B` receives exactly `W`'s update term);
//! - **matrix** (per model and rule): the error each weight layer hands down under the rule is
//!   bit for bit what the rule's equation's `M` gives (`W`, `B`, `s·sign W`, `|B|·sign W`),
//!   computed here from `W` and `B` independently of the rule's code and carried by feedback
//!   alignment (which the two checks above prove);
//! - **feedback** (per model and rule): `B` changes as the rule says over training steps (fixed,
//!   unused, redrawn, or `W − B` shrinking by `(1 − ηλ)` per step), and the weight mirror's
//!   `∠(W, B) ≈ arctan √(in/N)` law on a linear layer;
//! - **ia-mirror** (per model) and **ia-law**: information alignment with `β = 0`, `α = 1`,
//!   `γ = λ/2` is the weight mirror bit for bit, and on a linear layer its `B` settles where
//!   `(βσ²WWᵀ + γI) B = (ασ²/2) W`;
//! - **aa-law**: activation alignment's `B` settles at `βW/(2α)` on a zero-padded convolution
//!   with a frozen `W`.
//!
//! Checks take the rule as built by the registry, so a rule whose code is changed is checked
//! as changed.

use crate::config::{Model, ModelKind, TrainConfig};
use crate::layers::{
    softmax_cross_entropy, target_error, Conv2d, DeltaRecord, Linear, WeightLayer,
};
use crate::metrics::angle_deg;
use crate::models::Network;
use crate::optim::Sgd;
use crate::params::WeightParams;
use crate::rules::{
    self, activation_step, information_step, mirror_step, ActivationConfig, InformationAlignment,
    InformationConfig, MirrorConfig, MirrorInit, Rule, RuleConfig, RuleKind, WeightMirror,
};
use crate::tensor::{matmul_naive, Real, Tensor};
use crate::train::{build_model, train_step};
use crate::{Error, Result};

/// One check's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The model the check ran on (`linear` for a lone layer).
    pub model: String,
    /// The rule it concerns, or `None` for a model's rule-independent checks.
    pub rule: Option<RuleKind>,
    /// The check's name (`gradient`, `fa-control`, `kp-identity`, `matrix`, `feedback`).
    pub check: &'static str,
    pub passed: bool,
    /// What was measured.
    pub detail: String,
}

const CLASSES: usize = 5;
const BATCH: usize = 4;
const H: f64 = 1e-6;
/// The largest accepted |grad_W − finite difference| over the layer's largest |grad_W|.
const TOL: f64 = 1e-5;

/// A model as the checks run it: a tiny, seeded instance and the images it takes.
#[derive(Clone, Debug)]
pub struct Tiny {
    cfg: TrainConfig,
    input: [usize; 3],
}

/// Images a described model's tiny instance tries, smallest first: the first it takes is used.
const TINY_IMAGES: [[usize; 3]; 7] = [
    [1, 3, 3],
    [3, 8, 8],
    [1, 12, 12],
    [3, 16, 16],
    [1, 28, 28],
    [3, 32, 32],
    [1, 32, 32],
];

impl Tiny {
    /// `model`'s tiny instance (MLPs 7-6 wide), or why it takes none of [`TINY_IMAGES`].
    pub fn of(model: &Model) -> Result<Tiny> {
        let cfg = TrainConfig {
            model: model.clone(),
            hidden: vec![7, 6],
            seed: 11,
            ..Default::default()
        };
        let images: &[[usize; 3]] = match model.builtin() {
            Some(ModelKind::Mlp) => &[[1, 3, 3]],
            Some(ModelKind::Lenet5) => &[[1, 12, 12]],
            Some(ModelKind::LenetBiotorch) => &[[1, 32, 32]],
            Some(ModelKind::Resnet20 | ModelKind::Resnet32 | ModelKind::Resnet56) => &[[3, 8, 8]],
            Some(ModelKind::Resnet18 | ModelKind::Resnet34 | ModelKind::Resnet50) => &[[3, 32, 32]],
            None => &TINY_IMAGES,
        };
        let mut refusal = None;
        for &input in images {
            match cfg.model_parts(input, CLASSES) {
                Ok(_) => return Ok(Tiny { cfg, input }),
                Err(e) => refusal = Some(e),
            }
        }
        let e = refusal.expect("at least one image tried");
        Err(Error::config(
            "model",
            format!(
                "{} takes none of the images nowt check tries (up to 32×32): {e}",
                model.name()
            ),
        ))
    }

    pub fn name(&self) -> &str {
        self.cfg.model.name()
    }
}

/// The tiny instance under `rule`.
fn net<T: Real>(model: &Tiny, rule: &dyn Rule<T>) -> Network<T> {
    let cfg = TrainConfig {
        rule: rule.kind(),
        ..model.cfg.clone()
    };
    build_model(&cfg, model.input, CLASSES, rule)
}

/// A seeded batch for `model`'s tiny instance.
fn batch<T: Real>(model: &Tiny, stream: u64) -> (Tensor<T>, Vec<u32>) {
    let input = model.input;
    let mut rng = crate::rng(1234, stream);
    let x = Tensor::randn(&[BATCH, input.iter().product()], 1.0, &mut rng);
    let labels = (0..BATCH)
        .map(|i| ((i + stream as usize) % CLASSES) as u32)
        .collect();
    (x, labels)
}

fn rule<T: Real>(kind: RuleKind, cfg: &RuleConfig) -> Box<dyn Rule<T>> {
    rules::build::<T>(kind, cfg, BATCH)
}

/// Every weight-layer and parameter value, as bits.
fn bits<T: Real>(net: &Network<T>) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for l in net.weight_layers() {
        out.extend(l.params().w.data().iter().map(|v| v.f64().to_bits()));
    }
    for p in net.params() {
        out.extend(p.value.data().iter().map(|v| v.f64().to_bits()));
    }
    out
}

/// Per weight layer, the bits of `B` and then of the rule's fixed matrix where it has one
/// (direct feedback alignment's `D`, product feedback alignment's `P`).
fn feedback_bits<T: Real>(net: &Network<T>) -> Vec<Vec<u64>> {
    layer_bits(net, |p| {
        p.feedback
            .data()
            .iter()
            .chain(p.direct.iter().flat_map(|d| d.data()))
    })
}

/// Per weight layer, the bits of its fixed matrix `D` or `P` (none where it has none).
fn direct_bits<T: Real>(net: &Network<T>) -> Vec<Vec<u64>> {
    layer_bits(net, |p| p.direct.iter().flat_map(|d| d.data()))
}

/// Per weight layer, the bits of the values `of` its parameters gives.
fn layer_bits<'a, T: Real + 'a, I: Iterator<Item = &'a T>>(
    net: &'a Network<T>,
    of: impl Fn(&'a WeightParams<T>) -> I,
) -> Vec<Vec<u64>> {
    net.weight_layers()
        .iter()
        .map(|l| of(l.params()).map(|v| v.f64().to_bits()).collect())
        .collect()
}

fn sgd(momentum: f64, weight_decay: f64) -> Sgd {
    Sgd {
        momentum,
        nesterov: false,
        weight_decay,
        decay_all: false,
    }
}

/// The models `nowt check` runs when none is named: one of each kind of layer stack.
pub const DEFAULT_MODELS: [ModelKind; 4] = [
    ModelKind::Mlp,
    ModelKind::Lenet5,
    ModelKind::Resnet20,
    ModelKind::Resnet18,
];

/// Every check of `models` × `rules`: [`model_checks`] for each model, then [`laws`]. The
/// rules are built from the registry with `cfg`. Refused if a model takes no tiny input.
pub fn run(models: &[Model], kinds: &[RuleKind], cfg: &RuleConfig) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for model in models {
        out.extend(model_checks(model, kinds, cfg)?);
    }
    out.extend(laws(kinds, cfg));
    Ok(out)
}

/// The model-free laws of `kinds`, on a lone layer: the weight mirror's, information
/// alignment's and activation alignment's.
pub fn laws(kinds: &[RuleKind], cfg: &RuleConfig) -> Vec<Outcome> {
    let mut out = Vec::new();
    if kinds.contains(&RuleKind::WeightMirror) {
        out.push(mirror_law());
    }
    if kinds.contains(&RuleKind::InformationAlignment) {
        out.push(information_law(&cfg.ia));
    }
    if kinds.contains(&RuleKind::ActivationAlignment) {
        out.push(activation_law(&cfg.aa));
    }
    out
}

/// The checks of one model: its rule-independent ones, then `matrix` and `feedback` per rule.
/// Refused if the model takes no tiny input ([`Tiny::of`]).
pub fn model_checks(model: &Model, kinds: &[RuleKind], cfg: &RuleConfig) -> Result<Vec<Outcome>> {
    let model = &Tiny::of(model)?;
    let mut out = vec![
        gradient(model),
        fa_control(model, cfg),
        kp_identity(model, cfg),
    ];
    if kinds.contains(&RuleKind::KolenPollack) {
        out.push(kp_adamw(model, cfg));
    }
    if kinds.contains(&RuleKind::InformationAlignment) {
        out.push(ia_mirror(model, &cfg.ia));
    }
    for &kind in kinds {
        out.push(matrix(model, rule::<f32>(kind, cfg).as_ref()));
        out.push(feedback(model, rule::<f32>(kind, cfg).as_ref(), cfg));
    }
    Ok(out)
}

/// What `B` converges to under a rule whose optimiser steps it beside `W`: `W` itself
/// (Kolen-Pollack), or `PᵀW` for product feedback alignment's `R` (in `R`'s shape; at `r = 1`
/// that is `W`'s shape too, so the rule decides, not the shape).
fn b_target(kind: RuleKind, p: &WeightParams<f32>) -> Tensor<f32> {
    match (kind, &p.direct) {
        (RuleKind::ProductFeedbackAlignment, Some(fixed)) => {
            let mut t = matmul_naive(fixed, true, &p.w, false);
            t.reshape(p.feedback.shape());
            t
        }
        _ => p.w.clone(),
    }
}

/// `B`'s target minus `B` of every weight layer, bottom to top: `W − B` (Kolen-Pollack),
/// `PᵀW − R` (product feedback alignment).
fn w_minus_b(kind: RuleKind, n: &Network<f32>) -> Vec<Tensor<f32>> {
    n.weight_layers()
        .iter()
        .map(|l| b_target(kind, l.params()).zip_map(&l.params().feedback, |w, b| w - b))
        .collect()
}

/// The shared-update law `W − B = factor · (W₀ − B₀)` (given `d0 = W₀ − B₀`; `PᵀW − R` for
/// product feedback alignment), to rounding, at every weight layer but the first: the first
/// layer where it fails, if one does.
fn kp_law_problem(
    kind: RuleKind,
    n: &Network<f32>,
    d0: &[Tensor<f32>],
    factor: f32,
) -> Option<String> {
    n.weight_layers()
        .iter()
        .zip(w_minus_b(kind, n).iter().zip(d0))
        .skip(1)
        .find_map(|(l, (d, d0))| {
            let want = d0.map(|v| v * factor);
            let err = d.zip_map(&want, |a, b| a - b).norm() / want.norm().max(1e-30);
            (err > 1e-5).then(|| {
                format!(
                    "{}: B's distance to its target is off (1 − ηλ)^t by {err:.1e}",
                    l.params().name
                )
            })
        })
}

fn outcome(
    model: &Tiny,
    rule: Option<RuleKind>,
    check: &'static str,
    problem: Option<String>,
    ok: String,
) -> Outcome {
    Outcome {
        model: model.name().to_string(),
        rule,
        check,
        passed: problem.is_none(),
        detail: problem.unwrap_or(ok),
    }
}

/// Backprop's `grad_W` against central differences of the loss, in `f64`, at up to 8 sampled
/// entries of every weight layer.
pub fn gradient(model: &Tiny) -> Outcome {
    use rand::Rng as _;
    let bp = rule::<f64>(RuleKind::Backprop, &RuleConfig::default());
    let mut net = net::<f64>(model, bp.as_ref());
    let (x, labels) = batch::<f64>(model, 0);
    let outs = net.forward(&x, true);
    let (_, delta) = softmax_cross_entropy(outs.last().expect("logits"), &labels);
    net.backward(&x, &outs, delta, None, bp.as_ref(), None);
    let mut pick = crate::rng(99, 0);
    let (mut worst, mut problem) = (0f64, None);
    let layers = net.weight_layers().len();
    for i in 0..layers {
        let (name, analytic) = {
            let p = net.weight_layers()[i].params();
            (p.name.clone(), p.grad_w.clone())
        };
        let scale = analytic.data().iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for _ in 0..8.min(analytic.len()) {
            let j = pick.random_range(0..analytic.len());
            let mut at = |d: f64| {
                net.weight_layers_mut()[i].params_mut().w.data_mut()[j] += d;
                let l = softmax_cross_entropy(&net.predict(&x, true), &labels).0;
                net.weight_layers_mut()[i].params_mut().w.data_mut()[j] -= d;
                l
            };
            // A step that carries a ReLU or max-pool input across its kink gives a wrong
            // difference quotient (deep networks have many inputs near one); the entry
            // agrees if the quotient at any of four step sizes does (in f64 the smallest,
            // 1e-8, still has rounding error ~1e-8 relative).
            let (mut e, mut numeric) = (f64::INFINITY, 0.0);
            for h in [H, H / 10.0, H / 100.0, H * 10.0] {
                let q = (at(h) - at(-h)) / (2.0 * h);
                let eq = (analytic.data()[j] - q).abs() / scale;
                if eq < e {
                    (e, numeric) = (eq, q);
                }
                if e <= TOL {
                    break;
                }
            }
            worst = worst.max(e);
            if e > TOL && problem.is_none() {
                problem = Some(format!(
                    "{name}[{j}]: grad_W {} but finite differences {numeric} (relative error {e:.1e})",
                    analytic.data()[j]
                ));
            }
        }
    }
    outcome(
        model,
        None,
        "gradient",
        problem,
        format!("backprop's grad_W = finite differences in {layers} weight layers (worst relative error {worst:.1e})"),
    )
}

/// Feedback alignment with `B := W` is one backprop step bit for bit; with random `B` it is not.
pub fn fa_control(model: &Tiny, cfg: &RuleConfig) -> Outcome {
    let bp = rule::<f32>(RuleKind::Backprop, cfg);
    let fa = rule::<f32>(RuleKind::FeedbackAlignment, cfg);
    let (mut a, mut b, mut c) = (
        net(model, bp.as_ref()),
        net(model, fa.as_ref()),
        net(model, fa.as_ref()),
    );
    for l in b.weight_layers_mut() {
        let p = l.params_mut();
        p.feedback = p.w.clone();
    }
    let (x, y) = batch::<f32>(model, 1);
    let s = sgd(0.9, 1e-4);
    let mut rng = crate::rng(5, 5);
    let mut step = |n: &mut Network<f32>, r: &dyn Rule<f32>| {
        train_step(n, r, &s, &x, &y, 0.05, &mut rng).map(|_| ())
    };
    let problem = match (
        step(&mut a, bp.as_ref()),
        step(&mut b, fa.as_ref()),
        step(&mut c, fa.as_ref()),
    ) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            Some(format!("non-finite values at {e}"))
        }
        _ if bits(&a) != bits(&b) => Some("FA with B := W left backprop after one step".into()),
        _ if bits(&a) == bits(&c) => {
            Some("FA with its random B took backprop's step: B is not carrying the error".into())
        }
        _ => None,
    };
    outcome(
        model,
        Some(RuleKind::FeedbackAlignment),
        "fa-control",
        problem,
        "with B := W one step is backprop's bit for bit; with random B it is not".into(),
    )
}

/// Kolen-Pollack from `B₀ = W₀` is backprop bit for bit for 3 steps (momentum 0.9, decay λ).
pub fn kp_identity(model: &Tiny, cfg: &RuleConfig) -> Outcome {
    const STEPS: usize = 3;
    let bp = rule::<f32>(RuleKind::Backprop, cfg);
    let kp = rule::<f32>(RuleKind::KolenPollack, cfg);
    let (mut a, mut b) = (net(model, bp.as_ref()), net(model, kp.as_ref()));
    for l in b.weight_layers_mut() {
        let p = l.params_mut();
        p.feedback = p.w.clone();
    }
    // Backprop's weight decay is KP's λ, so that W's updates agree.
    let s = sgd(0.9, cfg.kp_decay.unwrap_or(1e-3));
    let mut rng = crate::rng(5, 6);
    let mut problem = None;
    for t in 0..STEPS {
        let (x, y) = batch::<f32>(model, 2 + t as u64);
        let ra = train_step(&mut a, bp.as_ref(), &s, &x, &y, 0.05, &mut rng);
        let rb = train_step(&mut b, kp.as_ref(), &s, &x, &y, 0.05, &mut rng);
        if let (Err(e), _) | (_, Err(e)) = (&ra, &rb) {
            problem = Some(format!("non-finite values at {e} in step {}", t + 1));
            break;
        }
        if bits(&a) != bits(&b) {
            problem = Some(format!("KP from B₀ = W₀ left backprop at step {}", t + 1));
            break;
        }
    }
    outcome(
        model,
        Some(RuleKind::KolenPollack),
        "kp-identity",
        problem,
        format!("from B₀ = W₀, {STEPS} steps are backprop's bit for bit"),
    )
}

/// Under AdamW (and Adam) Kolen-Pollack's `B` receives exactly `W`'s update term with `λ`
/// decoupled: `W − B = (1 − ηλ)^t (W₀ − B₀)` for 3 steps, to rounding, while `W` itself moves.
pub fn kp_adamw(model: &Tiny, cfg: &RuleConfig) -> Outcome {
    const STEPS: usize = 3;
    let cfg = RuleConfig {
        kp_decay: Some(0.5),
        ..cfg.clone()
    };
    let kp = rule::<f32>(RuleKind::KolenPollack, &cfg);
    let mut n = net(model, kp.as_ref());
    let (eta, lambda) = (0.01, 0.5);
    let d0 = w_minus_b(RuleKind::KolenPollack, &n);
    let top = |n: &Network<f32>| {
        n.weight_layers()
            .last()
            .expect("a weight layer")
            .params()
            .w
            .clone()
    };
    let w0 = top(&n);
    let mut adam = crate::optim::Optimizer::Adam(crate::optim::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decay_all: false,
        decoupled: true,
        t: 0,
    });
    let mut rng = crate::rng(5, 9);
    let mut problem = None;
    for t in 0..STEPS {
        let (x, y) = batch::<f32>(model, 30 + t as u64);
        adam.set_step(t as u64 + 1);
        if let Err(e) = train_step(&mut n, kp.as_ref(), &adam, &x, &y, eta, &mut rng) {
            problem = Some(format!("non-finite values at {e}"));
            break;
        }
        let factor = (1.0 - eta * lambda).powi(t as i32 + 1) as f32;
        problem = kp_law_problem(RuleKind::KolenPollack, &n, &d0, factor)
            .map(|p| format!("{p} at step {}", t + 1));
        if problem.is_some() {
            break;
        }
    }
    // The law is not vacuous: W took Adam's steps, not only the decay.
    let factor = (1.0 - eta * lambda).powi(STEPS as i32) as f32;
    let moved = top(&n).zip_map(&w0, |w, w0| w - w0 * factor).norm() / w0.norm();
    if problem.is_none() && moved < 1e-4 {
        problem = Some(format!(
            "W moved by only {moved:.1e} of its norm: no Adam step"
        ));
    }
    outcome(
        model,
        Some(RuleKind::KolenPollack),
        "kp-adamw",
        problem,
        format!("under AdamW, W − B shrinks by (1 − ηλ) every step, {STEPS} steps"),
    )
}

/// The `M` of `kind`'s equation, from `W`, `B` (and `P`) and the init std alone (not the rule's
/// code); `None` when the layer lacks what the equation needs (a `P: [out, mid]` and an
/// `R: [mid, …]` for product feedback alignment).
fn equation_matrix<T: Real>(
    kind: RuleKind,
    cfg: &RuleConfig,
    p: &WeightParams<T>,
) -> Option<Tensor<T>> {
    let (w, b, init_std) = (&p.w, &p.feedback, p.init_std);
    let sign = |v: T| {
        if v > T::zero() {
            T::one()
        } else if v < T::zero() {
            -T::one()
        } else {
            T::zero()
        }
    };
    Some(match kind {
        RuleKind::Backprop => w.clone(),
        RuleKind::FeedbackAlignment
        | RuleKind::WeightMirror
        | RuleKind::KolenPollack
        | RuleKind::SymmetricAlignment
        | RuleKind::InformationAlignment
        | RuleKind::ActivationAlignment => b.clone(),
        RuleKind::SignSymmetry => {
            let s = match cfg.ss_scale {
                rules::SignScale::InitStd => T::of(init_std),
                rules::SignScale::MeanAbs => {
                    T::of(w.data().iter().map(|v| v.abs().f64()).sum::<f64>() / w.len() as f64)
                }
            };
            w.map(|v| s * sign(v))
        }
        RuleKind::FixedRandomSign | RuleKind::BatchwiseRandomSign => {
            b.zip_map(w, |b, w| b.abs() * sign(w))
        }
        RuleKind::ProductFeedbackAlignment => {
            // The product by the tested GEMM, so the check can be bit for bit (a naive
            // product rounds differently).
            let fixed = p.direct.as_ref()?;
            if fixed.rows() != w.rows() || fixed.cols() != b.rows() {
                return None;
            }
            let mut m = crate::tensor::matmul(fixed, false, b, false);
            m.reshape(w.shape());
            m
        }
        RuleKind::DirectFeedbackAlignment | RuleKind::DirectRandomTargetProjection => {
            unreachable!("the broadcast rules' check is `direct`")
        }
    })
}

/// Each weight layer's `δ_in` under the rule equals, bit for bit, feedback alignment's with
/// `B :=` the equation's `M`, on the same forward pass.
pub fn matrix(model: &Tiny, rule: &dyn Rule<f32>) -> Outcome {
    let kind = rule.kind();
    if matches!(
        kind,
        RuleKind::DirectFeedbackAlignment | RuleKind::DirectRandomTargetProjection
    ) {
        return direct(model, rule);
    }
    let cfg = RuleConfig::default();
    let fa = self::rule::<f32>(RuleKind::FeedbackAlignment, &cfg);
    let (mut a, mut b) = (net(model, rule), net(model, rule));
    // A training step first, so that W has moved from its initialisation (and B too, for the
    // rules that change it).
    let (x0, y0) = batch::<f32>(model, 9);
    let mut rng = crate::rng(5, 7);
    let step = train_step(&mut a, rule, &sgd(0.9, 1e-4), &x0, &y0, 0.05, &mut rng);
    if let Err(e) = step {
        return outcome(
            model,
            Some(kind),
            "matrix",
            Some(format!("non-finite values at {e}")),
            String::new(),
        );
    }
    for (la, lb) in a.weight_layers().iter().zip(b.weight_layers_mut()) {
        let p = la.params();
        let Some(m) = equation_matrix(kind, &cfg, p) else {
            let why = format!("{} lacks what M = {} needs", p.name, equation_name(kind));
            return outcome(model, Some(kind), "matrix", Some(why), String::new());
        };
        let q = lb.params_mut();
        *q = p.clone();
        q.feedback = m;
    }
    for (pa, pb) in a.params().iter().zip(b.params_mut()) {
        pb.value = pa.value.clone();
    }
    let (x, y) = batch::<f32>(model, 10);
    let (mut da, mut db): (DeltaRecord<f32>, DeltaRecord<f32>) = (Vec::new(), Vec::new());
    for (n, r, d) in [(&mut a, rule, &mut da), (&mut b, fa.as_ref(), &mut db)] {
        let outs = n.forward(&x, true);
        let (_, delta) = softmax_cross_entropy(outs.last().expect("logits"), &y);
        n.backward(&x, &outs, delta, None, r, Some(d));
    }
    let problem = da.iter().zip(&db).find_map(|((name, a), (_, b))| {
        let same = match (a, b) {
            (Some(a), Some(b)) => a
                .data()
                .iter()
                .zip(b.data())
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            (None, None) => true,
            _ => false,
        };
        (!same).then(|| {
            let angle = match (a, b) {
                (Some(a), Some(b)) => {
                    angle_deg(a, b).map_or(String::new(), |d| format!(" ({d:.2}° apart)"))
                }
                _ => String::new(),
            };
            format!("the error below {name} is not δ·M with the equation's M{angle}")
        })
    });
    let layers = da.iter().filter(|(_, d)| d.is_some()).count();
    outcome(
        model,
        Some(kind),
        "matrix",
        problem,
        format!(
            "δ_in = δ·M bit for bit at {layers} weight layers, M = {}",
            equation_name(kind)
        ),
    )
}

/// The broadcast rules' matrix check: each weight layer's `δ_in` is what the rule sends — the
/// output error `e` (direct feedback alignment) or the target term `−t/N` (direct random target
/// projection) — through the layer's own `D` alone: bit for bit unchanged when every other
/// parameter (`W`, `B`, biases, batch norm's γ and β) changes between two backward passes of one
/// forward pass, and at linear layers `e · D` (or `(−t/N) · D`) itself.
fn direct(model: &Tiny, rule: &dyn Rule<f32>) -> Outcome {
    let mut n = net(model, rule);
    let (x0, y0) = batch::<f32>(model, 9);
    let mut rng = crate::rng(5, 7);
    let mut problem = train_step(&mut n, rule, &sgd(0.9, 1e-4), &x0, &y0, 0.05, &mut rng)
        .err()
        .map(|e| format!("non-finite values at {e}"));
    let (x, y) = batch::<f32>(model, 10);
    let outs = n.forward(&x, true);
    let logits = outs.last().expect("logits");
    let (_, e) = softmax_cross_entropy(logits, &y);
    let t = target_error(&y, logits.cols(), 1.0 / y.len() as f64);
    let (sent, what) = match rule.kind() {
        RuleKind::DirectRandomTargetProjection => (&t, "(−t/N)"),
        _ => (&e, "e"),
    };
    let (mut before, mut after): (DeltaRecord<f32>, DeltaRecord<f32>) = (Vec::new(), Vec::new());
    n.backward(&x, &outs, e.clone(), Some(&t), rule, Some(&mut before));
    for l in n.weight_layers_mut() {
        let p = l.params_mut();
        for t in [Some(&mut p.w), Some(&mut p.feedback), p.bias.as_mut()]
            .into_iter()
            .flatten()
        {
            t.apply(|v| v * 1.5 + 0.01);
        }
    }
    for p in n.params_mut() {
        p.value.apply(|v| v * 1.5 + 0.01);
    }
    n.backward(&x, &outs, e.clone(), Some(&t), rule, Some(&mut after));
    let same = |a: &Tensor<f32>, b: &Tensor<f32>| {
        a.shape() == b.shape()
            && a.data()
                .iter()
                .zip(b.data())
                .all(|(p, q)| p.to_bits() == q.to_bits())
    };
    let layers = n.weight_layers();
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if problem.is_some() {
            break;
        }
        let (Some(a), Some(b)) = (a, b) else { continue };
        problem = if !same(a, b) {
            Some(format!(
                "the error below {name} changed with the other parameters: not {what}·D alone"
            ))
        } else {
            let p = layers.iter().map(|l| l.params()).find(|p| &p.name == name);
            match p.and_then(|p| p.direct.as_ref()) {
                None => Some(format!("{name} has no D")),
                Some(d)
                    if a.shape().len() == 2
                        && !same(a, &crate::tensor::matmul(sent, false, d, false)) =>
                {
                    Some(format!("the error below {name} is not {what}·D"))
                }
                Some(_) => None,
            }
        };
    }
    let count = before.iter().filter(|(_, d)| d.is_some()).count();
    outcome(
        model,
        Some(rule.kind()),
        "matrix",
        problem,
        format!(
            "δ_in = {what}·D at {count} weight layers: what the rule sends through D alone, bit \
             for bit"
        ),
    )
}

fn equation_name(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Backprop => "W",
        RuleKind::FeedbackAlignment
        | RuleKind::WeightMirror
        | RuleKind::KolenPollack
        | RuleKind::SymmetricAlignment
        | RuleKind::InformationAlignment
        | RuleKind::ActivationAlignment => "B",
        RuleKind::SignSymmetry => "s·sign(W)",
        RuleKind::FixedRandomSign | RuleKind::BatchwiseRandomSign => "|B|·sign(W)",
        RuleKind::DirectFeedbackAlignment => "D (the output error's)",
        RuleKind::DirectRandomTargetProjection => "D (the target's)",
        RuleKind::ProductFeedbackAlignment => "P·R",
    }
}

/// The fraction of feedback entries below the first layer that are bitwise unchanged (a fresh
/// `f32` draw repeats the old value at a position with probability ~2⁻²⁰, so a few entries of a
/// large network do).
fn kept(now: &[Vec<u64>], before: &[Vec<u64>]) -> f64 {
    let (same, all) = now
        .iter()
        .zip(before)
        .skip(1)
        .flat_map(|(a, b)| a.iter().zip(b))
        .fold((0usize, 0usize), |(s, n), (p, q)| {
            (s + usize::from(p == q), n + 1)
        });
    same as f64 / all.max(1) as f64
}

/// `B` over 3 plain-SGD training steps: as the rule says.
pub fn feedback(model: &Tiny, rule: &dyn Rule<f32>, cfg: &RuleConfig) -> Outcome {
    const STEPS: usize = 3;
    let kind = rule.kind();
    let mut n = net(model, rule);
    // W's decay is 1e-3, which KP shares with B unless its config gives its own λ; PFA's R
    // always decays as W does.
    let lambda = match kind {
        RuleKind::ProductFeedbackAlignment => 1e-3,
        _ => rule.shared_update_decay(1e-3).unwrap_or(1e-3),
    };
    let eta = 0.05;
    let s = sgd(0.0, lambda);
    let start = feedback_bits(&n);
    let fixed = direct_bits(&n);
    let diff0 = w_minus_b(kind, &n);
    let mut rng = crate::rng(5, 8);
    let mut before = start.clone();
    let mut problem = None;
    for t in 0..STEPS {
        let b_prev: Vec<Tensor<f32>> = n
            .weight_layers()
            .iter()
            .map(|l| l.params().feedback.clone())
            .collect();
        let (x, y) = batch::<f32>(model, 20 + t as u64);
        if let Err(e) = train_step(&mut n, rule, &s, &x, &y, eta, &mut rng) {
            problem = Some(format!("non-finite values at {e}"));
            break;
        }
        let now = feedback_bits(&n);
        let layers = n.weight_layers();
        problem = match kind {
            RuleKind::Backprop
            | RuleKind::FeedbackAlignment
            | RuleKind::SignSymmetry
            | RuleKind::FixedRandomSign
            | RuleKind::DirectFeedbackAlignment
            | RuleKind::DirectRandomTargetProjection
                if now != start =>
            {
                Some("B (or D) changed; this rule keeps it fixed".into())
            }
            RuleKind::FixedRandomSign | RuleKind::BatchwiseRandomSign
                if layers
                    .iter()
                    .any(|l| l.params().feedback.data().iter().any(|&b| b < 0.0)) =>
            {
                Some("B holds magnitudes and must be ≥ 0".into())
            }
            RuleKind::BatchwiseRandomSign if now[0] != start[0] => {
                Some("the first layer's B, which carries no error, was redrawn".into())
            }
            RuleKind::BatchwiseRandomSign if kept(&now, &before) > 1e-4 => Some(format!(
                "step {}: {:.2} % of the magnitudes were not redrawn",
                t + 1,
                100.0 * kept(&now, &before)
            )),
            RuleKind::SymmetricAlignment
            | RuleKind::InformationAlignment
            | RuleKind::ActivationAlignment
                if now[0] != start[0] =>
            {
                Some("the first layer's B, which carries no error, changed".into())
            }
            RuleKind::InformationAlignment | RuleKind::ActivationAlignment
                if now.iter().zip(&before).skip(1).any(|(a, b)| a == b) =>
            {
                Some(format!("step {}: a layer's B did not move", t + 1))
            }
            // B ← (1 − 2η_B α) B + η_B β W, with the W of after the step.
            RuleKind::SymmetricAlignment => {
                let (keep, pull) = (
                    1.0 - 2.0 * cfg.sa.lr * cfg.sa.alpha,
                    cfg.sa.lr * cfg.sa.beta,
                );
                layers.iter().zip(&b_prev).skip(1).find_map(|(l, b)| {
                    let p = l.params();
                    let want = b.zip_map(&p.w, |b, w| keep as f32 * b + pull as f32 * w);
                    let err =
                        p.feedback.zip_map(&want, |a, b| a - b).norm() / want.norm().max(1e-30);
                    (err > 1e-6).then(|| {
                        format!("{}: B is off (1 − 2η_B α) B + η_B β W by {err:.1e}", p.name)
                    })
                })
            }
            // Every layer's P, the first's too (its R carries no error, so no law sees it).
            RuleKind::ProductFeedbackAlignment if direct_bits(&n) != fixed => Some(format!(
                "step {}: P changed; product feedback alignment keeps it fixed",
                t + 1
            )),
            // Plain SGD: W − B = (1 − ηλ)^t (W₀ − B₀), to rounding (PᵀW − R for PFA).
            RuleKind::KolenPollack | RuleKind::ProductFeedbackAlignment => {
                let factor = (1.0 - eta * lambda).powi(t as i32 + 1) as f32;
                kp_law_problem(kind, &n, &diff0, factor)
            }
            _ => None,
        };
        if problem.is_some() {
            break;
        }
        before = now;
    }
    let ok = match kind {
        RuleKind::Backprop | RuleKind::SignSymmetry => "B unused and unchanged",
        RuleKind::FeedbackAlignment => "B fixed at its initialisation",
        RuleKind::FixedRandomSign => "B = |R| ≥ 0, fixed",
        RuleKind::BatchwiseRandomSign => "B = |R| ≥ 0, redrawn every step (not the first layer's)",
        RuleKind::KolenPollack => "W − B shrinks by (1 − ηλ) every plain-SGD step",
        RuleKind::ProductFeedbackAlignment => {
            "PᵀW − R shrinks by (1 − ηλ) every plain-SGD step, P fixed"
        }
        RuleKind::DirectFeedbackAlignment | RuleKind::DirectRandomTargetProjection => {
            "B unused and unchanged, D fixed"
        }
        RuleKind::SymmetricAlignment => {
            "B ← (1 − 2η_B α) B + η_B β W after every step (not the first layer's)"
        }
        RuleKind::WeightMirror => {
            "B moved by the mirror without non-finite values (its law: below)"
        }
        RuleKind::InformationAlignment | RuleKind::ActivationAlignment => {
            "B moved every step but the first layer's, without non-finite values (its law: below)"
        }
    };
    outcome(
        model,
        Some(kind),
        "feedback",
        problem,
        format!("{ok}, {STEPS} steps"),
    )
}

/// The weight mirror's law on a linear layer: from `B = 0` without decay, after `N` noise
/// samples `∠(W, B) ≈ arctan √(in/N)`, within 15 % for `N` = 4, 16 and 64 times `in`.
pub fn mirror_law() -> Outcome {
    let (inputs, outputs) = (32, 48);
    let mut rng = crate::rng(7, 0);
    let mut layer: Linear<f64> =
        Linear::new("fc", inputs, outputs, 1.0, &mut rng, &mut crate::rng(7, 1));
    layer.p.feedback.apply(|_| 0.0);
    let cfg = MirrorConfig {
        lr: 0.01,
        decay: 0.0,
        batch_size: inputs * 4,
        init: MirrorInit::Zero,
        ..Default::default()
    };
    let mut noise = crate::rng(7, 2);
    let mut problem = None;
    let mut seen = 0;
    let mut last = String::new();
    for batches in [1, 3, 12] {
        for _ in 0..batches {
            mirror_step(&mut layer as &mut dyn WeightLayer<f64>, &cfg, &mut noise);
        }
        seen += batches * cfg.batch_size;
        let got = angle_deg(&layer.p.w, &layer.p.feedback).unwrap_or(90.0);
        let want = (inputs as f64 / seen as f64).sqrt().atan().to_degrees();
        last = format!("N = {seen}: {got:.2}° vs arctan √(in/N) = {want:.2}°");
        if (got / want - 1.0).abs() > 0.15 {
            problem = Some(last.clone());
            break;
        }
    }
    Outcome {
        model: format!("linear {inputs}→{outputs}"),
        rule: Some(RuleKind::WeightMirror),
        check: "mirror-law",
        passed: problem.is_none(),
        detail: problem.unwrap_or(last),
    }
}

/// Information alignment with `β = 0`, `α = 1` and `γ = λ/2` against the weight mirror with decay
/// `λ`, the same `σ`, `η_B` and noise stream: `B` bit for bit the same after two noise batches
/// on every layer of `model` (`W` as initialised).
pub fn ia_mirror(model: &Tiny, ia: &InformationConfig) -> Outcome {
    let ia = InformationConfig {
        alpha: 1.0,
        beta: 0.0,
        batch_size: BATCH,
        warmup_batches: 0,
        ..ia.clone()
    };
    let wm = WeightMirror {
        cfg: MirrorConfig {
            sigma: ia.sigma,
            lr: ia.lr,
            decay: 2.0 * ia.gamma,
            batch_size: BATCH,
            ..Default::default()
        },
    };
    let run = |rule: &dyn Rule<f32>| {
        let mut n = net(model, rule);
        let mut rng = crate::rng(5, 9);
        for _ in 0..2 {
            rule.after_step(&mut n.weight_layers_mut(), &mut rng);
        }
        feedback_bits(&n)
    };
    let (got, want) = (run(&InformationAlignment { cfg: ia }), run(&wm));
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    outcome(
        model,
        Some(RuleKind::InformationAlignment),
        "ia-mirror",
        (differ > 0).then(|| format!("{differ} layers' B differ from the mirror's")),
        "β = 0, α = 1, γ = λ/2: B bit for bit the weight mirror's, 2 noise batches".into(),
    )
}

/// Information alignment's fixed point on a linear layer with a frozen `W` (the rule's `σ`,
/// `α`, `β`, `γ`; `η_B = 0.05`, 2048 noise samples a batch): after 300 batches
/// `‖(βσ²WWᵀ + γI) B − (ασ²/2) W‖` is within 5 % of `‖(ασ²/2) W‖`.
pub fn information_law(ia: &InformationConfig) -> Outcome {
    let (inputs, outputs) = (12, 8);
    let mut rng = crate::rng(7, 3);
    let mut layer: Linear<f64> = Linear::new(
        "fc",
        inputs,
        outputs,
        (inputs as f64).sqrt().recip(),
        &mut rng,
        &mut crate::rng(7, 4),
    );
    let cfg = InformationConfig {
        lr: 0.05,
        batch_size: 2048,
        ..ia.clone()
    };
    let mut noise = crate::rng(7, 5);
    for _ in 0..300 {
        information_step(&mut layer as &mut dyn WeightLayer<f64>, &cfg, &mut noise);
    }
    let (w, b) = (&layer.p.w, &layer.p.feedback);
    let s2 = cfg.sigma * cfg.sigma;
    // (βσ² W Wᵀ + γ I) B − (ασ²/2) W, with W Wᵀ B as W (Wᵀ B).
    let wwb = matmul_naive(w, false, &matmul_naive(w, true, b, false), false);
    let target = w.map(|v| cfg.alpha * s2 / 2.0 * v);
    let lhs = wwb.zip_map(b, |wwb, b| cfg.beta * s2 * wwb + cfg.gamma * b);
    let err = lhs.zip_map(&target, |l, t| l - t).norm() / target.norm().max(1e-300);
    let detail =
        format!("‖(βσ²WWᵀ + γI)B − (ασ²/2)W‖ / ‖(ασ²/2)W‖ = {err:.3} after 300 batches of 2048");
    Outcome {
        model: format!("linear {inputs}→{outputs}"),
        rule: Some(RuleKind::InformationAlignment),
        check: "ia-law",
        passed: err < 0.05,
        detail,
    }
}

/// Activation alignment's fixed point on a zero-padded 3×3 convolution (4 → 6 channels, 6×6
/// planes, stride 1) with a frozen `W` (the rule's `σ`, `α`, `β`; `η_B = 1/(4ασ²)`, 64 noise
/// samples a batch). At `B = βW/(2α)` the step's error `β ξWᵀ − 2α ξBᵀ` is zero for every `ξ`,
/// and away from it `B − βW/(2α)` contracts by `(1 − 2η_B α σ²) = ½` a batch in expectation: after
/// 100 batches `‖B − βW/(2α)‖ / ‖βW/(2α)‖ < 10⁻⁶`.
pub fn activation_law(aa: &ActivationConfig) -> Outcome {
    let (c_in, c_out, side) = (4, 6, 6);
    let mut layer: Conv2d<f64> = Conv2d::new(
        "conv",
        c_in,
        c_out,
        3,
        1,
        1,
        false,
        (side, side),
        (9.0 * c_in as f64).sqrt().recip(),
        &mut crate::rng(7, 6),
        &mut crate::rng(7, 7),
    );
    let cfg = ActivationConfig {
        lr: 0.25 / (aa.alpha * aa.sigma * aa.sigma),
        batch_size: 64,
        ..aa.clone()
    };
    let mut noise = crate::rng(7, 8);
    for _ in 0..100 {
        activation_step(&mut layer as &mut dyn WeightLayer<f64>, &cfg, &mut noise);
    }
    let (w, b) = (&layer.p.w, &layer.p.feedback);
    let target = w.map(|v| cfg.beta / (2.0 * cfg.alpha) * v);
    // β = 0: B → 0, measured against ‖W‖.
    let scale = if cfg.beta == 0.0 {
        w.norm()
    } else {
        target.norm()
    };
    let err = b.zip_map(&target, |b, t| b - t).norm() / scale;
    Outcome {
        model: format!("conv {c_in}→{c_out}"),
        rule: Some(RuleKind::ActivationAlignment),
        check: "aa-law",
        passed: err < 1e-6,
        detail: format!(
            "3×3 pad 1 on {side}×{side}: ‖B − βW/(2α)‖ / ‖βW/(2α)‖ = {err:.1e} after 100 batches of 64"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::WeightLayer;
    use crate::rules::{FeedbackInit, Top};
    use std::borrow::Cow;

    /// A rule that claims to be one rule and carries the error through another's matrix.
    struct Swapped {
        claims: RuleKind,
        uses_w: bool,
    }
    impl<T: Real> Rule<T> for Swapped {
        fn kind(&self) -> RuleKind {
            self.claims
        }
        fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
            Cow::Borrowed(if self.uses_w { &p.w } else { &p.feedback })
        }
    }

    /// A rule that claims to be another and otherwise is itself (its matrix, its source, its
    /// feedback).
    struct Claims {
        claims: RuleKind,
        is: Box<dyn Rule<f32>>,
    }
    impl Rule<f32> for Claims {
        fn kind(&self) -> RuleKind {
            self.claims
        }
        fn backward_matrix<'a>(&self, p: &'a WeightParams<f32>) -> Cow<'a, Tensor<f32>> {
            self.is.backward_matrix(p)
        }
        fn backward_source<'a>(
            &self,
            p: &WeightParams<f32>,
            delta: &'a Tensor<f32>,
            top: Top<'a, f32>,
        ) -> crate::rules::Source<'a, f32> {
            self.is.backward_source(p, delta, top)
        }
        fn init_feedback(&self, p: &mut WeightParams<f32>, net: &mut crate::rules::FeedbackInit) {
            self.is.init_feedback(p, net)
        }
    }

    /// Product feedback alignment's law holds at any expansion, `r = 1` included, where `R` has
    /// `W`'s shape (the law's target is `PᵀW` by the rule, not by a shape).
    #[test]
    fn the_pfa_law_holds_at_every_expansion() {
        for expand in [1, 3] {
            let cfg = RuleConfig {
                pfa_expand: expand,
                ..Default::default()
            };
            let pfa = rule::<f32>(RuleKind::ProductFeedbackAlignment, &cfg);
            for model in [ModelKind::Mlp.into(), ModelKind::Lenet5.into()] {
                let o = feedback(&Tiny::of(&model).unwrap(), pfa.as_ref(), &cfg);
                assert!(o.passed, "r = {expand}: {o:?}");
            }
        }
    }

    /// Product feedback alignment with a `P` that moves — only the first layer's, which no
    /// law sees (its `R` carries no error) — fails the feedback check.
    #[test]
    fn the_pfa_check_fails_when_p_moves() {
        struct MovesP(Box<dyn Rule<f32>>);
        impl Rule<f32> for MovesP {
            fn kind(&self) -> RuleKind {
                self.0.kind()
            }
            fn backward_matrix<'a>(&self, p: &'a WeightParams<f32>) -> Cow<'a, Tensor<f32>> {
                self.0.backward_matrix(p)
            }
            fn feedback_gradient(&self, p: &WeightParams<f32>) -> Option<Tensor<f32>> {
                self.0.feedback_gradient(p)
            }
            fn init_feedback(&self, p: &mut WeightParams<f32>, net: &mut FeedbackInit) {
                self.0.init_feedback(p, net)
            }
            fn after_step(&self, layers: &mut [&mut dyn WeightLayer<f32>], _: &mut crate::Rng) {
                let p = layers[0].params_mut().direct.as_mut().expect("P");
                p.data_mut()[0] *= 1.5;
            }
        }
        let cfg = RuleConfig::default();
        let pfa = rule::<f32>(RuleKind::ProductFeedbackAlignment, &cfg);
        let model = Tiny::of(&ModelKind::Mlp.into()).unwrap();
        assert!(feedback(&model, pfa.as_ref(), &cfg).passed);
        let o = feedback(&model, &MovesP(pfa), &cfg);
        assert!(!o.passed, "{o:?}");
        assert!(o.detail.contains("P changed"), "{o:?}");
    }

    /// The two broadcast rules share `D` and differ only in what they send through it: each
    /// one's matrix check fails the other (DFA sending the target, DRTP the output error).
    #[test]
    fn the_broadcast_rules_checks_tell_the_error_from_the_target() {
        let cfg = RuleConfig::default();
        let (dfa, drtp) = (
            RuleKind::DirectFeedbackAlignment,
            RuleKind::DirectRandomTargetProjection,
        );
        for model in [ModelKind::Mlp.into(), ModelKind::Lenet5.into(), described()] {
            let model = &Tiny::of(&model).unwrap();
            for (claims, is) in [(dfa, drtp), (drtp, dfa)] {
                let o = matrix(model, rule::<f32>(claims, &cfg).as_ref());
                assert!(o.passed, "{o:?}");
                let liar = Claims {
                    claims,
                    is: rule::<f32>(is, &cfg),
                };
                let o = matrix(model, &liar);
                assert!(!o.passed, "{is:?} claiming {claims:?}: {o:?}");
            }
        }
    }

    /// A network no built-in is: convolutions with and without batch norm, average pooling, a
    /// residual block without batch norm whose body ends in a layer whose backward reads its
    /// output (tanh) and whose shortcut is a strided 1×1 convolution, sigmoid, and a linear
    /// layer to the classes.
    fn described() -> Model {
        let text = r#"
            name = "small-described"
            [[layers]]
            kind = "conv"
            out = 4
            kernel = 3
            padding = 1
            [[layers]]
            kind = "batch_norm"
            relu = true
            [[layers]]
            kind = "residual"
            [[layers.body]]
            kind = "conv"
            out = 6
            kernel = 3
            stride = 2
            padding = 1
            [[layers.body]]
            kind = "tanh"
            [[layers.body]]
            kind = "conv"
            out = 6
            kernel = 3
            padding = 1
            [[layers.body]]
            kind = "tanh"
            [[layers.shortcut]]
            kind = "conv"
            out = 6
            kernel = 1
            stride = 2
            bias = false
            [[layers]]
            kind = "avg_pool"
            kernel = 2
            [[layers]]
            kind = "flatten"
            [[layers]]
            kind = "linear"
            out = 5
            [[layers]]
            kind = "sigmoid"
            [[layers]]
            kind = "linear"
        "#;
        Model::Described(toml::from_str(text).unwrap())
    }

    #[test]
    fn every_check_passes_on_the_small_models_and_fails_when_a_matrix_is_swapped() {
        let cfg = RuleConfig::default();
        let models = [
            ModelKind::Mlp.into(),
            ModelKind::Lenet5.into(),
            ModelKind::Resnet20.into(),
            described(),
        ];
        for o in run(&models, &RuleKind::ALL, &cfg).unwrap() {
            assert!(o.passed, "{o:?}");
        }
        for (claims, uses_w) in [
            (RuleKind::Backprop, false),
            (RuleKind::FeedbackAlignment, true),
            (RuleKind::KolenPollack, true),
            (RuleKind::WeightMirror, true),
            (RuleKind::SignSymmetry, true),
            (RuleKind::FixedRandomSign, false),
            (RuleKind::DirectFeedbackAlignment, false),
            (RuleKind::DirectRandomTargetProjection, false),
            (RuleKind::ProductFeedbackAlignment, true),
            (RuleKind::SymmetricAlignment, true),
            (RuleKind::InformationAlignment, true),
            (RuleKind::ActivationAlignment, true),
        ] {
            for model in &models {
                let model = &Tiny::of(model).unwrap();
                if matches!(
                    claims,
                    RuleKind::SymmetricAlignment
                        | RuleKind::InformationAlignment
                        | RuleKind::ActivationAlignment
                ) {
                    // No B dynamics at all: its feedback law fails.
                    let o = feedback(model, &Swapped { claims, uses_w }, &cfg);
                    assert!(!o.passed, "{claims:?} without its B update: {o:?}");
                }
                let o = matrix(model, &Swapped { claims, uses_w });
                assert!(
                    !o.passed,
                    "{claims:?} using {}: {o:?}",
                    if uses_w { "W" } else { "B" }
                );
            }
        }
    }
}
