//! The weight mirror, the paper's first mechanism (eq. 7). Between learning steps each layer
//! enters *mirror mode* on its own: its input is driven with zero-mean noise `ξ` of variance
//! `σ²`, its linear output `η = ξ Wᵀ` (no bias, no nonlinearity) is formed, and
//!
//! ```text
//! B ← B + η_B · ηᵀ ξ / N_m − η_B λ_WM · B
//! ```
//!
//! Since `E[ξᵀ ξ] = N_m σ² I`, `E[ηᵀ ξ] / N_m = σ² W`: `B` drifts toward `σ² W / λ_WM` without
//! reading `W` (for a convolution each tap averages over the noise vectors that reached it, see
//! [`mirror_step`]). The first weight layer's `B` is never used and not mirrored. From `B = 0` with `λ_WM = 0`, `∠(W, B) ≈ arctan √(in / N)` after `N` noise
//! samples. Noise is drawn independently for every layer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{FeedbackInit, Knob, Rule, RuleInfo, RuleKind};
use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::WeightMirror,
    name: "weight-mirror",
    aliases: &["wm"],
    summary: "M = B, B learns W from noise in mirror mode (paper eq. 7)",
    knobs: &[
        Knob {
            key: "wm.sigma",
            flag: "wm-sigma",
            doc: "noise std σ (default 1)",
        },
        Knob {
            key: "wm.lr",
            flag: "wm-lr",
            doc: "mirror learning rate η_B (default 0.01)",
        },
        Knob {
            key: "wm.decay",
            flag: "wm-decay",
            doc: "mirror decay λ_WM (default 1)",
        },
        Knob {
            key: "wm.batch_size",
            flag: "wm-batch-size",
            doc: "noise samples per mirror batch N_m (default 0: the training batch)",
        },
        Knob {
            key: "wm.batches_per_step",
            flag: "wm-batches-per-step",
            doc: "mirror batches after every training step (default 1)",
        },
        Knob {
            key: "wm.warmup_batches",
            flag: "wm-warmup-batches",
            doc: "mirror-only batches before training (default 500)",
        },
        Knob {
            key: "wm.init",
            flag: "wm-init",
            doc: "B₀: random (default) or zero",
        },
        Knob {
            key: "wm.noise",
            flag: "wm-noise",
            doc: "distribution of ξ, variance σ² either way: gaussian (default) or uniform",
        },
    ],
    build: |cfg, batch_size| {
        let mut cfg = cfg.wm.clone();
        if cfg.batch_size == 0 {
            cfg.batch_size = batch_size;
        }
        Box::new(WeightMirror { cfg })
    },
};

/// How `B` starts under the weight mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorInit {
    /// `B₀ ~ N(0, init_std²)`, independent of `W` (as in the paper). The default.
    Random,
    /// `B₀ = 0`.
    Zero,
}

/// The distribution of the mirror's noise `ξ`; both have mean 0 and variance `σ²`, so
/// `E[ηᵀ ξ] / N_m = σ² W` and `B`'s fixed point are the same (the paper uses Gaussian noise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorNoise {
    /// `ξ ~ N(0, σ²)`. The default.
    Gaussian,
    /// `ξ ~ U(−√3 σ, √3 σ)`.
    Uniform,
}

/// The weight mirror's schedule and constants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// Noise standard deviation `σ`. Default 1.
    pub sigma: f64,
    /// Mirror learning rate `η_B`; `B` averages over about `2 N_m / (η_B λ_WM)` noise samples.
    /// Default 0.01.
    pub lr: f64,
    /// Mirror decay `λ_WM`; with `σ = 1` and `λ_WM = 1`, `B → W` in expectation. Default 1.
    pub decay: f64,
    /// Noise samples per mirror batch `N_m`; 0 means the training batch size. Default 0.
    pub batch_size: usize,
    /// Mirror batches after every training step. Default 1.
    pub batches_per_step: usize,
    /// Mirror-only batches before training starts. Default 500.
    pub warmup_batches: usize,
    /// How `B` starts. Default `random`.
    pub init: MirrorInit,
    /// The noise distribution. Default `gaussian`.
    pub noise: MirrorNoise,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            sigma: 1.0,
            lr: 0.01,
            decay: 1.0,
            batch_size: 0,
            batches_per_step: 1,
            warmup_batches: 500,
            init: MirrorInit::Random,
            noise: MirrorNoise::Gaussian,
        }
    }
}

/// One mirror batch for one layer (paper eq. 7), tap by tap:
///
/// ```text
/// B[o, c, t] ← (1 − η_B λ_WM) · B[o, c, t] + η_B · grad_W(ξ, ξWᵀ)[o, c, t] / (N_m · r_t)
/// ```
///
/// `r_t` the noise vectors per sample that reached tap `t` ([`WeightLayer::tap_reach`]): one
/// for a linear layer; for a convolution, the output positions at which `t` reads the image
/// rather than its zero padding (every position is one `(ξ patch, η)` pair, and `grad_W` sums
/// them). Each tap's sum has expectation `N_m r_t σ² W[o, c, t]`, so `B` settles at exactly
/// `σ² W / λ_WM` on every layer, padded or not. Averaging over all `H_o·W_o` positions instead
/// left border taps at `W ⊙ m` (`m` the fraction of positions they see: corners 0.77 on 8×8
/// planes), an angle floor of ≈ 5° on ResNet-20's 8×8 stage; dividing by `N_m` alone left a
/// convolution's `B` `H_o·W_o` times too large, and training diverged.
pub fn mirror_step<T: Real>(
    layer: &mut dyn WeightLayer<T>,
    cfg: &MirrorConfig,
    rng: &mut crate::Rng,
) {
    let n = cfg.batch_size.max(1);
    let xi = draw_noise(&*layer, n, cfg.sigma, cfg.noise, rng);
    // ηᵀ ξ with η = ξ Wᵀ, in one pass where the layer can fuse the two.
    let mut g = Tensor::zeros(&[0]);
    let w = &layer.params().w;
    layer.response_grad(&xi, &[(T::one(), w)], &mut g, T::zero(), T::one());
    tap_step(layer, &g, cfg.lr, n, 1.0 - cfg.lr * cfg.decay);
}

/// `ξ` for a batch of `n` inputs to `layer`: mean 0, variance `σ²`, from `rng`.
pub(super) fn draw_noise<T: Real>(
    layer: &dyn WeightLayer<T>,
    n: usize,
    sigma: f64,
    noise: MirrorNoise,
    rng: &mut crate::Rng,
) -> Tensor<T> {
    let shape = layer.input_shape(n);
    match noise {
        MirrorNoise::Gaussian => crate::noise::gaussian(&shape, sigma, rng),
        MirrorNoise::Uniform => crate::noise::uniform(&shape, 3f64.sqrt() * sigma, rng),
    }
}

/// `B[…, t] ← keep · B[…, t] + lr · g[…, t] / (n · r_t)` tap by tap: `g` (of `W`'s shape) summed
/// over `n` noise samples, each tap's sum averaged over the `r_t` vectors per sample that
/// reached it ([`WeightLayer::tap_reach`]).
pub(super) fn tap_step<T: Real>(
    layer: &mut dyn WeightLayer<T>,
    g: &Tensor<T>,
    lr: f64,
    n: usize,
    keep: f64,
) {
    // η_B / (N_m r_t) for each tap t.
    let step: Vec<T> = layer
        .tap_reach()
        .iter()
        .map(|&r| T::of(lr / (n * r.max(1)) as f64))
        .collect();
    let keep = T::of(keep);
    let b = &mut layer.params_mut().feedback;
    for (b, g) in b
        .data_mut()
        .chunks_exact_mut(step.len())
        .zip(g.data().chunks_exact(step.len()))
    {
        for ((b, &g), &s) in b.iter_mut().zip(g).zip(&step) {
            *b = keep * *b + s * g;
        }
    }
}

/// `M = B`, with `B` learned in mirror mode.
#[derive(Clone, Debug)]
pub struct WeightMirror {
    pub cfg: MirrorConfig,
}

/// `batches` noise batches, each a `step` of every layer in turn but the first, whose `B`
/// carries no error (nothing below it needs one): the mirror's schedule, and [`NoiseRule`]'s.
pub(super) fn noise_batches<T: Real>(
    layers: &mut [&mut dyn WeightLayer<T>],
    batches: usize,
    rng: &mut crate::Rng,
    step: impl Fn(&mut dyn WeightLayer<T>, &mut crate::Rng),
) {
    for _ in 0..batches {
        for layer in layers.iter_mut().skip(1) {
            step(&mut **layer, rng);
        }
    }
}

/// A rule that learns `B` from noise with `M = B`, on the mirror's schedule (its warm-up
/// batches, then one noise batch after every training step, every layer but the first): what
/// its config says is the rule's kind, the warm-up and one noise batch's step of one layer.
pub trait NoiseStep: Send + Sync {
    const KIND: RuleKind;
    fn warmup_batches(&self) -> usize;
    fn step<T: Real>(&self, layer: &mut dyn WeightLayer<T>, rng: &mut crate::Rng);
}

/// The rule of a [`NoiseStep`] config: information and activation alignment.
#[derive(Clone, Debug)]
pub struct NoiseRule<C> {
    pub cfg: C,
}

impl<T: Real, C: NoiseStep> Rule<T> for NoiseRule<C> {
    fn kind(&self) -> RuleKind {
        C::KIND
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn warmup_batches(&self) -> usize {
        self.cfg.warmup_batches()
    }
    fn warmup_batch(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        noise_batches(layers, 1, rng, |l, rng| self.cfg.step(l, rng));
    }
    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        noise_batches(layers, 1, rng, |l, rng| self.cfg.step(l, rng));
    }
}

impl WeightMirror {
    fn mirror<T: Real>(
        &self,
        layers: &mut [&mut dyn WeightLayer<T>],
        batches: usize,
        rng: &mut crate::Rng,
    ) {
        noise_batches(layers, batches, rng, |l, rng| {
            mirror_step(l, &self.cfg, rng)
        });
    }
}

impl<T: Real> Rule<T> for WeightMirror {
    fn kind(&self) -> RuleKind {
        RuleKind::WeightMirror
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn init_feedback(&self, p: &mut WeightParams<T>, _net: &mut FeedbackInit) {
        if self.cfg.init == MirrorInit::Zero {
            p.feedback.apply(|_| T::zero());
        }
    }
    fn warmup_batches(&self) -> usize {
        self.cfg.warmup_batches
    }
    fn warmup_batch(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.mirror(layers, 1, rng);
    }
    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.mirror(layers, self.cfg.batches_per_step, rng);
    }
}
