//! Learning rules: how error crosses a weight layer (DESIGN.md §3).
//!
//! A rule chooses the matrix `M` in `δ_in = δ_out · M` and says how the feedback weights `B`
//! change. It never touches the weight gradient, which every layer computes the same way.
//! Each rule's file declares its [`RuleInfo`]; [`REGISTRY`] is the one list of rules, which the
//! CLI enumerates.

mod activation_alignment;
mod backprop;
mod batchwise_random_sign;
mod direct_feedback_alignment;
mod direct_random_target_projection;
mod feedback_alignment;
mod fixed_random_sign;
mod information_alignment;
mod kolen_pollack;
mod output_layer;
mod product_feedback_alignment;
mod sign_symmetry;
mod symmetric_alignment;
mod weight_mirror;

pub use activation_alignment::{activation_step, ActivationAlignment, ActivationConfig};
pub use backprop::Backprop;
pub use batchwise_random_sign::BatchwiseRandomSign;
pub use direct_feedback_alignment::{tile_output_error, DirectFeedbackAlignment};
pub use direct_random_target_projection::DirectRandomTargetProjection;
pub use feedback_alignment::FeedbackAlignment;
pub use fixed_random_sign::FixedRandomSign;
pub use information_alignment::{information_step, InformationAlignment, InformationConfig};
pub use kolen_pollack::KolenPollack;
pub use output_layer::{with_output_layer, OutputLayerRule};
pub use product_feedback_alignment::ProductFeedbackAlignment;
pub use sign_symmetry::{SignScale, SignSymmetry};
pub use symmetric_alignment::{SymmetricAlignment, SymmetricConfig};
pub use weight_mirror::{mirror_step, MirrorConfig, MirrorInit, MirrorNoise, WeightMirror};

use std::any::{Any, TypeId};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};
use crate::{Error, Result};

/// A learning rule. Implementations are small: one file each, citing their equation.
pub trait Rule<T: Real>: Send + Sync {
    fn kind(&self) -> RuleKind;

    /// `M`, the matrix that carries the error backwards: `δ_in = δ_out · M` (DESIGN.md §3).
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>>;

    /// The error that crosses the layer through `M`: `δ_in = source · M`. The layer's own
    /// `δ_out` under every rule but the broadcast ones, which send what the network's top hands
    /// down (`top`, when the backward pass started at the logits) the same at every output
    /// position: direct feedback alignment the output error `e = ∂loss/∂logits`, direct random
    /// target projection the target's share of it.
    fn backward_source<'a>(
        &self,
        _p: &WeightParams<T>,
        delta: &'a Tensor<T>,
        _top: Top<'a, T>,
    ) -> Source<'a, T> {
        Source::PerPosition(delta)
    }

    /// Whether `M` stands where backprop's `W` stands, carrying this layer's own `δ_out` (or,
    /// at the output layer, the output error, which is the same): only then do `∠(W, M)`, the
    /// norm ratio and sign concordance mean something. True for every rule but direct
    /// feedback alignment below the output layer, whose `D` carries the network's output error
    /// instead (and may have `W`'s shape by coincidence, when a hidden layer is as wide as the
    /// output). `output` says whether `p` is the network's top weight layer.
    fn m_stands_for_w(&self, _p: &WeightParams<T>, _output: bool) -> bool {
        true
    }

    /// Called once per layer after `W` and `B ~ N(0, init_std²)` are drawn.
    fn init_feedback(&self, _p: &mut WeightParams<T>, _net: &mut FeedbackInit) {}

    /// `Some(λ)` when the optimiser steps `B` beside `W` with the decay `λ`, which `W` then also
    /// uses (Kolen-Pollack, paper eqs. 16–17; product feedback alignment's `R`); `weight_decay`
    /// is what `W` decays by under every other rule. The optimiser applies it with `B`'s own
    /// buffer and [`Rule::feedback_gradient`] as `B`'s gradient.
    fn shared_update_decay(&self, _weight_decay: f64) -> Option<f64> {
        None
    }

    /// `B`'s gradient when [`Rule::shared_update_decay`] is `Some`, in `B`'s shape: `None` for
    /// `grad_W` itself (Kolen-Pollack: `B` receives `W`'s update term).
    fn feedback_gradient(&self, _p: &WeightParams<T>) -> Option<Tensor<T>> {
        None
    }

    /// Noise batches [`Rule::before_training`] runs (the mirror family's warm-up; 0: none), so
    /// that front ends can say what the wait before the first step is.
    fn warmup_batches(&self) -> usize {
        0
    }

    /// One of the warm-up's noise batches: work on `B` (and on nothing else but the noise
    /// stream `rng`), every layer in turn.
    fn warmup_batch(&self, _layers: &mut [&mut dyn WeightLayer<T>], _rng: &mut crate::Rng) {}

    /// Work on `B` before the first training step (the weight mirror's warm-up): its
    /// [`Rule::warmup_batches`] noise batches in order. The training loop runs them one at a
    /// time, so that a run can stop during a long warm-up.
    fn before_training(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        for _ in 0..self.warmup_batches() {
            self.warmup_batch(layers, rng);
        }
    }

    /// Work on `B` after every training step (the weight mirror's mirror mode).
    fn after_step(&self, _layers: &mut [&mut dyn WeightLayer<T>], _rng: &mut crate::Rng) {}
}

/// What crosses a weight layer through the rule's matrix `M` (see [`Rule::backward_source`]).
#[derive(Clone, Copy, Debug)]
pub enum Source<'a, T> {
    /// An error for every output position, `δ_out`'s shape: `δ_in = input_error(source, M)`.
    PerPosition(&'a Tensor<T>),
    /// One vector per sample, `[N, rows of M]`, the same at every output position (direct
    /// feedback alignment's `e`): `δ_in` is the input error of that vector tiled over the output
    /// positions — each position's share `e / positions` when `spread` — which a convolution
    /// computes without tiling it ([`WeightLayer::broadcast_input_error`]).
    Broadcast { e: &'a Tensor<T>, spread: bool },
}

/// What the network's top hands every weight layer's rule, for the rules that broadcast it: the
/// output error `e = ∂loss/∂logits` and the target's share of it, `−t/N` (for the mean
/// cross-entropy over `N` samples `e = p/N − t/N`, `p` the softmax, `t` the one-hot targets;
/// a data-parallel rank's `N` is the global batch). Both `None` for a lone layer.
#[derive(Clone, Copy, Debug)]
pub struct Top<'a, T> {
    pub error: Option<&'a Tensor<T>>,
    pub target: Option<&'a Tensor<T>>,
}

impl<T> Default for Top<'_, T> {
    fn default() -> Self {
        Self {
            error: None,
            target: None,
        }
    }
}

/// What a rule may need, besides the layer, to initialise its feedback: the network's output
/// width and a random stream of the rule's own (seeded by the run's seed, apart from `W`'s and
/// `B`'s streams, so `W₀` and `B₀` do not depend on the rule).
pub struct FeedbackInit {
    pub classes: usize,
    pub rng: crate::Rng,
}

/// One rule's registry entry, declared in the rule's own file as `INFO`: everything the CLI,
/// the configs and the reports know about a rule. [`REGISTRY`] lists them.
pub struct RuleInfo {
    pub kind: RuleKind,
    /// The full name (`--rule`, config files, reports).
    pub name: &'static str,
    /// Short names; the first also names compare's run directories (`bp-s0`).
    pub aliases: &'static [&'static str],
    /// One line: what `M` is and how `B` changes.
    pub summary: &'static str,
    /// The config keys (under `[rules]`) and flags that only this rule reads.
    pub knobs: &'static [Knob],
    /// Builds the rule from the config; `batch_size` is the training batch.
    pub build: fn(&RuleConfig, usize) -> Box<dyn AnyRule>,
}

/// A rule's own setting: its key under `[rules]`, its flag, and what it does.
pub struct Knob {
    pub key: &'static str,
    pub flag: &'static str,
    pub doc: &'static str,
}

/// A rule usable in both precisions (`f32` to train, `f64` for the oracles); every rule is.
pub trait AnyRule: Rule<f32> + Rule<f64> {}
impl<R: Rule<f32> + Rule<f64>> AnyRule for R {}

/// Every rule, in the order the paper introduces them, then the rules beyond it. Adding a rule
/// is its file (with its `INFO`: name, aliases, summary, knobs, constructor), a [`RuleKind`]
/// variant, one line here and, if it has knobs, its section of [`RuleConfig`] with their ranges
/// (the CLI's flags and `nowt rules` come from the knobs); `check.rs` states its oracles.
pub const REGISTRY: [&RuleInfo; 13] = [
    &backprop::INFO,
    &feedback_alignment::INFO,
    &sign_symmetry::INFO,
    &weight_mirror::INFO,
    &kolen_pollack::INFO,
    &fixed_random_sign::INFO,
    &batchwise_random_sign::INFO,
    &direct_feedback_alignment::INFO,
    &symmetric_alignment::INFO,
    &information_alignment::INFO,
    &activation_alignment::INFO,
    &direct_random_target_projection::INFO,
    &product_feedback_alignment::INFO,
];

/// The rules nowt implements: a name for each [`REGISTRY`] entry. Serialised as the full name;
/// any alias is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Backprop,
    FeedbackAlignment,
    SignSymmetry,
    WeightMirror,
    KolenPollack,
    FixedRandomSign,
    BatchwiseRandomSign,
    DirectFeedbackAlignment,
    SymmetricAlignment,
    InformationAlignment,
    ActivationAlignment,
    DirectRandomTargetProjection,
    ProductFeedbackAlignment,
}

impl RuleKind {
    /// Every rule, in [`REGISTRY`] order.
    pub const ALL: [RuleKind; REGISTRY.len()] = {
        let mut all = [RuleKind::Backprop; REGISTRY.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = REGISTRY[i].kind;
            i += 1;
        }
        all
    };

    /// This rule's registry entry.
    pub fn info(self) -> &'static RuleInfo {
        REGISTRY
            .iter()
            .find(|i| i.kind == self)
            .expect("every RuleKind has a REGISTRY entry")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The first short name.
    pub fn alias(self) -> &'static str {
        self.info().aliases[0]
    }

    /// One line: what `M` is and how `B` changes.
    pub fn summary(self) -> &'static str {
        self.info().summary
    }

    /// Parses a full name or an alias.
    pub fn from_name(name: &str) -> Result<Self> {
        // Case and `_` for `-` do not matter: `FA`, `Weight_Mirror`.
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        let names = |i: &RuleInfo| std::iter::once(i.name).chain(i.aliases.iter().copied());
        if let Some(i) = REGISTRY.iter().find(|i| names(i).any(|n| n == wanted)) {
            return Ok(i.kind);
        }
        // The closest name, if one is close: a typo, not another word.
        let wanted = wanted.as_str();
        let near = REGISTRY
            .iter()
            .flat_map(|i| names(i).map(move |n| (i.name, n)))
            .map(|(rule, n)| (rule, n.len(), strsim::damerau_levenshtein(wanted, n)))
            .filter(|&(_, len, d)| d <= (len / 4).max(1))
            .min_by_key(|&(_, _, d)| d)
            .map(|(rule, _, _)| rule);
        let choices = REGISTRY
            .iter()
            .map(|i| format!("{} ({})", i.name, i.aliases.join(", ")))
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::UnknownName {
            what: "rule",
            name: name.to_string(),
            choices: match near {
                Some(n) => format!("{choices}; did you mean {n}?"),
                None => choices,
            },
        })
    }
}

impl Serialize for RuleKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RuleKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        RuleKind::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// Every rule's knobs, each with a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Feedback alignment: `B₀ ~ N(0, (init_scale · init_std)²)`. Default 1.
    pub fa_init_scale: f64,
    /// Sign symmetry: `s` in `M = s·sign(W)`. Default `init-std` (Xiao et al.).
    pub ss_scale: SignScale,
    /// Weight mirror knobs.
    pub wm: MirrorConfig,
    /// Kolen-Pollack: the decay `λ` applied to both `W` and `B`. Must be > 0 for `W − B` to
    /// shrink. Default (absent): the run's `weight_decay`, so `W` decays by the same amount
    /// under every rule; a value replaces `W`'s decay too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kp_decay: Option<f64>,
    /// Direct feedback alignment: `D ~ N(0, (init_scale · init_std)²)`. Default 1.
    pub dfa_init_scale: f64,
    /// Direct feedback alignment on a convolution: each output position receives
    /// `e / (H_o · W_o)`, the share a global average pool gives backprop's error, instead of the
    /// whole `e` (BioTorch's form, the default false).
    pub dfa_spread: bool,
    /// Direct random target projection: `D ~ N(0, (init_scale · init_std)²)`. Default 1.
    pub drtp_init_scale: f64,
    /// Direct random target projection on a convolution: each output position receives its
    /// share `(−t/N) / (H_o · W_o)` of the target term (default false, as `dfa_spread`).
    pub drtp_spread: bool,
    /// Product feedback alignment: `r`, the intermediate population per output unit
    /// (`mid = r · out`). Default 10, the paper's.
    pub pfa_expand: usize,
    /// Symmetric alignment's coefficients.
    pub sa: SymmetricConfig,
    /// Information alignment's coefficients and schedule.
    pub ia: InformationConfig,
    /// Activation alignment's coefficients and schedule.
    pub aa: ActivationConfig,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            fa_init_scale: 1.0,
            ss_scale: SignScale::InitStd,
            wm: MirrorConfig::default(),
            kp_decay: None,
            dfa_init_scale: 1.0,
            dfa_spread: false,
            drtp_init_scale: 1.0,
            drtp_spread: false,
            pfa_expand: 10,
            sa: SymmetricConfig::default(),
            ia: InformationConfig::default(),
            aa: ActivationConfig::default(),
        }
    }
}

impl RuleConfig {
    /// Checks ranges; `key` prefixes name the config section.
    pub fn validate(&self) -> Result<()> {
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        let non_negative = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be a non-negative number, got {v}"),
                ))
            }
        };
        // A rule whose update shrinks B by `(1 − s)`: `s ≥ 1` would flip B's sign every time.
        let keeps_sign =
            |key: &str, what: &str, (s, got): (f64, String), update: &str, when: &str| {
                if s < 1.0 {
                    Ok(())
                } else {
                    Err(Error::config(
                        key,
                        format!(
                            "{what} must be below 1 ({update} would flip B's sign every {when}), \
                         got {got}"
                        ),
                    ))
                }
            };
        positive("rules.fa_init_scale", self.fa_init_scale)?;
        positive("rules.dfa_init_scale", self.dfa_init_scale)?;
        positive("rules.drtp_init_scale", self.drtp_init_scale)?;
        if self.pfa_expand == 0 {
            return Err(Error::config(
                "rules.pfa_expand",
                "must be at least 1 (the intermediate population has r × out neurons), got 0",
            ));
        }
        if let Some(lambda) = self.kp_decay {
            non_negative("rules.kp_decay", lambda)?;
        }
        positive("rules.wm.sigma", self.wm.sigma)?;
        positive("rules.wm.lr", self.wm.lr)?;
        non_negative("rules.wm.decay", self.wm.decay)?;
        keeps_sign(
            "rules.wm",
            "lr × decay",
            (
                self.wm.lr * self.wm.decay,
                format!("{} × {}", self.wm.lr, self.wm.decay),
            ),
            "B ← (1 − η_B λ_WM) B",
            "mirror batch",
        )?;
        positive("rules.sa.lr", self.sa.lr)?;
        // Without the decay term nothing bounds B (B ← B + η_B β W grows without end).
        positive("rules.sa.alpha", self.sa.alpha)?;
        non_negative("rules.sa.beta", self.sa.beta)?;
        keeps_sign(
            "rules.sa",
            "2 × lr × alpha",
            (
                2.0 * self.sa.lr * self.sa.alpha,
                format!("2 × {} × {}", self.sa.lr, self.sa.alpha),
            ),
            "B ← (1 − 2η_B α) B + η_B β W",
            "step",
        )?;
        positive("rules.ia.sigma", self.ia.sigma)?;
        positive("rules.ia.lr", self.ia.lr)?;
        non_negative("rules.ia.alpha", self.ia.alpha)?;
        non_negative("rules.ia.beta", self.ia.beta)?;
        non_negative("rules.ia.gamma", self.ia.gamma)?;
        if self.ia.beta == 0.0 && self.ia.gamma == 0.0 {
            return Err(Error::config(
                "rules.ia",
                "beta and gamma are both 0: nothing bounds B (R_amp alone grows it without \
                 end); give beta (R_null) or gamma (R_decay) a positive weight"
                    .to_string(),
            ));
        }
        keeps_sign(
            "rules.ia",
            "2 × lr × gamma",
            (
                2.0 * self.ia.lr * self.ia.gamma,
                format!("2 × {} × {}", self.ia.lr, self.ia.gamma),
            ),
            "B ← (1 − 2η_B γ) B + …",
            "noise batch",
        )?;
        positive("rules.aa.sigma", self.aa.sigma)?;
        positive("rules.aa.lr", self.aa.lr)?;
        // Without the sparsity term nothing bounds B.
        positive("rules.aa.alpha", self.aa.alpha)?;
        non_negative("rules.aa.beta", self.aa.beta)?;
        let s2 = self.aa.sigma * self.aa.sigma;
        keeps_sign(
            "rules.aa",
            "2 × lr × alpha × sigma²",
            (
                2.0 * self.aa.lr * self.aa.alpha * s2,
                format!("2 × {} × {} × {s2}", self.aa.lr, self.aa.alpha),
            ),
            "B ← (1 − 2η_B α σ²) B + η_B β σ² W in expectation",
            "noise batch",
        )?;
        Ok(())
    }

    /// What can only be checked against the network: activation alignment's noise-driven
    /// update settles only if `η_B α σ² < N / (N + d + 1)` at every layer it updates, `N` the
    /// noise batch (`batch_size`: the training batch where the rule's is 0) and `d` the layer's
    /// fan-in (`fan_ins`, every weight layer's, bottom to top; the first carries no error and is
    /// skipped). With `X = B − βW/(2α)` one noise batch is `X ← X (I − 2η_B α Ĉ)`, `Ĉ = ξᵀξ/N`;
    /// for Gaussian `ξ`, `E[Ĉ] = σ² I` and `E[Ĉ²] = σ⁴ (N + d + 1)/N · I` (Wishart), so
    /// `E‖X‖²` shrinks iff `2η_B α σ² < 2N / (N + d + 1)`. (The bound is a linear layer's; a
    /// convolution averages each tap over more pairs, so for it the bound is conservative.)
    pub fn validate_for(&self, kind: RuleKind, batch_size: usize, fan_ins: &[usize]) -> Result<()> {
        if kind != RuleKind::ActivationAlignment {
            return Ok(());
        }
        let aa = &self.aa;
        let n = if aa.batch_size == 0 {
            batch_size
        } else {
            aa.batch_size
        } as f64;
        let Some(d) = fan_ins.iter().skip(1).max() else {
            return Ok(());
        };
        let rate = aa.lr * aa.alpha * aa.sigma * aa.sigma;
        let bound = n / (n + *d as f64 + 1.0);
        if rate < bound {
            return Ok(());
        }
        Err(Error::config(
            "rules.aa",
            format!(
                "lr × alpha × sigma² = {rate} must be below N / (N + d + 1) = {bound:.4} (noise \
                 batch N = {n}, widest fan-in d = {d}): beyond it B diverges instead of settling \
                 at βW/(2α); lower aa.lr or enlarge aa.batch_size"
            ),
        ))
    }
}

/// Whether `rule` carries the error through `B` itself (`M = B`: feedback alignment and the
/// rules that learn `B`), found on a 1×1 layer: the rules an alignment of `B₀` with `W₀`
/// ([`soft_align`]) means something for.
pub fn carries_through_b<T: Real>(rule: &dyn Rule<T>) -> bool {
    let mut rng = crate::rng(0, 0);
    let mut p = WeightParams::new("probe", &[1, 1], 1.0, false, &mut rng.clone(), &mut rng);
    let mut init = FeedbackInit {
        classes: 1,
        rng: crate::rng(0, 1),
    };
    rule.init_feedback(&mut p, &mut init);
    std::ptr::eq(rule.backward_matrix(&p).as_ref(), &p.feedback)
}

/// One-time soft alignment of a layer's feedback at initialisation (Cheon, Bae & Paik 2025):
/// `B₀ ← ‖B₀‖ (α Ŵ₀ + √(1 − α²) B̂⊥)`, `Ŵ₀` the unit `W₀` and `B̂⊥` the unit part of the drawn
/// `B₀` orthogonal to it, so that `cos ∠(W₀, B₀) = α` exactly and `‖B₀‖` is kept; `α = 1` is
/// `B₀ ∝ W₀`. Then no weight transport: `B` changes only as the rule says. (A run with
/// `α = 0` does not call it and keeps `B₀` as drawn.)
pub fn soft_align<T: Real>(p: &mut WeightParams<T>, alpha: f64) {
    let (w_norm, b_norm) = (p.w.norm(), p.feedback.norm());
    if w_norm == 0.0 || b_norm == 0.0 {
        return;
    }
    let along: f64 = (p.w.data().iter().zip(p.feedback.data()))
        .map(|(w, b)| w.f64() * b.f64())
        .sum::<f64>()
        / w_norm;
    let (w_unit, perp) = (T::of(1.0 / w_norm), T::of(along / w_norm));
    let rest = p.feedback.zip_map(&p.w, |b, w| b - perp * w);
    let rest_norm = rest.norm().max(f64::MIN_POSITIVE);
    let (a, keep) = (
        T::of(b_norm * alpha),
        T::of(b_norm * (1.0 - alpha * alpha).max(0.0).sqrt() / rest_norm),
    );
    p.feedback = rest.zip_map(&p.w, |r, w| a * w_unit * w + keep * r);
}

/// Builds a rule in precision `T`. `batch_size` resolves the weight mirror's default mirror
/// batch size.
pub fn build<T: Real>(kind: RuleKind, cfg: &RuleConfig, batch_size: usize) -> Box<dyn Rule<T>> {
    let rule = (kind.info().build)(cfg, batch_size);
    // `Real` is `f32` or `f64`; the rule is both, so one of the two upcasts is `Box<dyn Rule<T>>`.
    let rule: Box<dyn Any> = if TypeId::of::<T>() == TypeId::of::<f32>() {
        Box::new(rule as Box<dyn Rule<f32>>)
    } else {
        Box::new(rule as Box<dyn Rule<f64>>)
    };
    *rule
        .downcast::<Box<dyn Rule<T>>>()
        .expect("Real is implemented for f32 and f64 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default config with one edit, validated; the error as the user reads it.
    fn validated(edit: impl FnOnce(&mut RuleConfig)) -> std::result::Result<(), String> {
        let mut cfg = RuleConfig::default();
        edit(&mut cfg);
        cfg.validate().map_err(|e| e.to_string())
    }

    type Field = fn(&mut RuleConfig) -> &mut f64;
    /// Knobs by config key.
    type Knobs<'a> = &'a [(&'a str, Field)];
    /// Sets a rule's coefficients so that its shrink factor is the given `s`.
    type Shrink = fn(&mut RuleConfig, f64);

    /// Every range `validate` checks, at its edges: positive keys reject 0, negatives, NaN and
    /// ∞; non-negative keys accept 0 and reject the rest; each error names its key.
    #[test]
    fn validate_checks_every_knobs_range_and_names_its_key() {
        validated(|_| ()).unwrap();
        let positive: Knobs = &[
            ("rules.fa_init_scale", |c| &mut c.fa_init_scale),
            ("rules.dfa_init_scale", |c| &mut c.dfa_init_scale),
            ("rules.drtp_init_scale", |c| &mut c.drtp_init_scale),
            ("rules.wm.sigma", |c| &mut c.wm.sigma),
            ("rules.wm.lr", |c| &mut c.wm.lr),
            ("rules.sa.lr", |c| &mut c.sa.lr),
            ("rules.ia.sigma", |c| &mut c.ia.sigma),
            ("rules.ia.lr", |c| &mut c.ia.lr),
            ("rules.aa.sigma", |c| &mut c.aa.sigma),
            ("rules.aa.lr", |c| &mut c.aa.lr),
            // AA's α must be positive (nothing else bounds B); its β only non-negative.
            ("rules.aa.alpha", |c| &mut c.aa.alpha),
            // So must SA's α, for the same reason.
            ("rules.sa.alpha", |c| &mut c.sa.alpha),
        ];
        let non_negative: Knobs = &[
            ("rules.kp_decay", |c| c.kp_decay.insert(0.0)),
            ("rules.wm.decay", |c| &mut c.wm.decay),
            ("rules.sa.beta", |c| &mut c.sa.beta),
            ("rules.ia.alpha", |c| &mut c.ia.alpha),
            ("rules.ia.beta", |c| &mut c.ia.beta),
            ("rules.ia.gamma", |c| &mut c.ia.gamma),
            ("rules.aa.beta", |c| &mut c.aa.beta),
        ];
        // (what the message says, the values rejected, the smallest accepted, the knobs)
        let ranges: [(&str, &[f64], f64, Knobs); 2] = [
            (
                "positive",
                &[0.0, -1.0, f64::NAN, f64::INFINITY],
                1e-3,
                positive,
            ),
            (
                "non-negative",
                &[-1.0, f64::NAN, f64::INFINITY],
                0.0,
                non_negative,
            ),
        ];
        for (range, bad, ok, knobs) in ranges {
            for &(key, field) in knobs {
                for &bad in bad {
                    let err = validated(|c| *field(c) = bad).unwrap_err();
                    let want = format!("invalid {key}: must be a {range} number, got {bad}");
                    assert_eq!(err, want);
                }
                validated(|c| *field(c) = ok).unwrap_or_else(|e| panic!("{key} = {ok}: {e}"));
            }
        }
    }

    /// A rule's shrink factor `s` (B ← (1 − s) B) must stay below 1: accepted at 0.99, rejected
    /// at exactly 1, for the mirror (`η_B λ_WM`), symmetric alignment (`2η_B α`), information
    /// alignment (`2η_B γ`) and activation alignment (`2η_B α σ²`, here with σ = 0.5).
    #[test]
    fn validate_rejects_a_shrink_factor_of_one_and_accepts_one_below() {
        let cases: [(&str, Shrink); 4] = [
            ("rules.wm", |c, s| {
                c.wm.lr = 0.5;
                c.wm.decay = 2.0 * s;
            }),
            ("rules.sa", |c, s| {
                c.sa.lr = 0.5;
                c.sa.alpha = s;
            }),
            ("rules.ia", |c, s| {
                c.ia.lr = 0.5;
                c.ia.gamma = s;
            }),
            ("rules.aa", |c, s| {
                c.aa.sigma = 0.5;
                c.aa.lr = 0.5;
                c.aa.alpha = 4.0 * s;
            }),
        ];
        for (key, set) in cases {
            validated(|c| set(c, 0.99)).unwrap_or_else(|e| panic!("{key} at 0.99: {e}"));
            let err = validated(|c| set(c, 1.0)).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid {key}: ")) && err.contains("must be below 1"),
                "{key} at 1: {err}"
            );
        }
    }

    /// Information alignment with neither `R_null` nor `R_decay` (β = γ = 0) is refused:
    /// nothing would bound `B`.
    #[test]
    fn information_alignment_needs_a_term_that_bounds_b() {
        let err = validated(|c| {
            c.ia.beta = 0.0;
            c.ia.gamma = 0.0;
        })
        .unwrap_err();
        assert!(
            err.starts_with("invalid rules.ia: beta and gamma are both 0"),
            "{err}"
        );
    }

    /// Activation alignment's bound `η_B α σ² < N / (N + d + 1)` is where `B` stops settling:
    /// on a linear layer of fan-in `d` = 64 with noise batches of `N` = 16, `‖B − βW/(2α)‖`
    /// shrinks over 40 batches at half the bound and grows at twice it; `validate_for`
    /// accepts just below the bound and refuses at it, naming N and d (the first layer's fan-in
    /// does not count).
    #[test]
    fn activation_alignment_settles_below_its_bound_and_is_refused_at_it() {
        use crate::layers::{Linear, WeightLayer};
        let (d, n) = (64, 16);
        let bound = n as f64 / (n + d + 1) as f64;
        let distance_after = |rate: f64| {
            let mut layer = Linear::<f64>::new(
                "fc",
                d,
                8,
                0.1,
                &mut crate::rng(1, 0),
                &mut crate::rng(1, 1),
            );
            let cfg = ActivationConfig {
                lr: rate / 0.5,
                batch_size: n,
                ..Default::default()
            };
            let gap = |l: &Linear<f64>| {
                let p = l.params();
                p.feedback.zip_map(&p.w, |b, w| b - w).norm()
            };
            let before = gap(&layer);
            let mut rng = crate::rng(1, 2);
            for _ in 0..40 {
                activation_step(&mut layer as &mut dyn WeightLayer<f64>, &cfg, &mut rng);
            }
            gap(&layer) / before
        };
        assert!(distance_after(0.5 * bound) < 0.1);
        assert!(distance_after(2.0 * bound) > 10.0);
        let at = |rate: f64| {
            let mut c = RuleConfig::default();
            c.aa.lr = rate / c.aa.alpha;
            c.aa.batch_size = n;
            c.validate_for(RuleKind::ActivationAlignment, 128, &[10_000, d, 8])
        };
        at(0.99 * bound).unwrap();
        let err = at(bound).unwrap_err().to_string();
        assert!(
            err.contains("noise batch N = 16, widest fan-in d = 64"),
            "{err}"
        );
        RuleConfig::default()
            .validate_for(RuleKind::WeightMirror, 128, &[64, 64])
            .unwrap();
    }

    /// Rule names match without case and with `_` for `-`; a near miss gets a suggestion.
    #[test]
    fn rule_names_match_without_case_and_suggest_the_nearest() {
        assert_eq!(
            RuleKind::from_name("FA").unwrap(),
            RuleKind::FeedbackAlignment
        );
        let wm = RuleKind::from_name("Weight_Mirror").unwrap();
        assert_eq!(wm, RuleKind::WeightMirror);
        let err = RuleKind::from_name("feedback-alignmnt")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("did you mean feedback-alignment?)"), "{err}");
        let err = RuleKind::from_name("magic").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown rule 'magic'") && !err.contains("did you mean"),
            "{err}"
        );
    }

    /// The short names name compare's run directories (`bp-s0`); the summaries are each
    /// rule's own line.
    #[test]
    fn aliases_and_summaries_are_each_rules_own() {
        let aliases: Vec<&str> = RuleKind::ALL.iter().map(|k| k.alias()).collect();
        assert_eq!(
            aliases,
            [
                "bp", "fa", "ss", "wm", "kp", "frsf", "brsf", "dfa", "sa", "ia", "aa", "drtp",
                "pfa"
            ]
        );
        let summaries: std::collections::HashSet<&str> =
            RuleKind::ALL.iter().map(|k| k.summary()).collect();
        assert_eq!(summaries.len(), RuleKind::ALL.len());
        for k in RuleKind::ALL {
            assert_eq!(k.summary(), k.info().summary);
        }
        assert!(RuleKind::Backprop.summary().starts_with("M = W"));
    }
}
