//! The weight mirror, the paper's first mechanism (eq. 7). Between learning steps each layer
//! enters *mirror mode* on its own: its input is driven with zero-mean noise `ξ` of variance
//! `σ²`, its linear output `η = ξ Wᵀ` (no bias, no nonlinearity) is formed, and
//!
//! ```text
//! B ← B + η_B · ηᵀ ξ / N_m − η_B λ_WM · B
//! ```
//!
//! Since `E[ξᵀ ξ] = N_m σ² I`, `E[ηᵀ ξ] / N_m = σ² W`: `B` drifts toward `σ² W / λ_WM` without
//! reading `W`. From `B = 0` with `λ_WM = 0`, `∠(W, B) ≈ arctan √(in / N)` after `N` noise
//! samples. Noise is drawn independently for every layer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Rule, RuleKind};
use crate::layers::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};

/// How `B` starts under the weight mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorInit {
    /// `B₀ ~ N(0, init_std²)`, independent of `W` (as in the paper). The default.
    Random,
    /// `B₀ = 0`.
    Zero,
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
        }
    }
}

/// One mirror batch for one layer (paper eq. 7): `B ← (1 − η_B λ_WM) B + η_B · grad_W(ξ, ξWᵀ) / N`,
/// `N` the number of noise vectors: the `N_m` samples times, for a convolution, the output
/// positions per sample (each position is one `(ξ patch, η)` pair, and `grad_W` sums them).
/// With that average `B` settles at `σ² W / λ_WM` for every layer; dividing by `N_m` alone left
/// a convolution's `B` `H_o·W_o` times too large (232× on ResNet-20's 16×16 stage), and the
/// errors it sent down grew with depth until training diverged.
pub fn mirror_step<T: Real>(
    layer: &mut dyn WeightLayer<T>,
    cfg: &MirrorConfig,
    rng: &mut crate::Rng,
) {
    let n = cfg.batch_size.max(1);
    let xi = Tensor::<T>::randn(&layer.input_shape(n), cfg.sigma, rng);
    let eta = layer.linear(&xi);
    // Noise vectors: samples × output positions per sample (1 for a linear layer).
    let vectors = eta.len() / layer.params().w.rows().max(1);
    // B ← (1 − η_B λ_WM) B + (η_B / N) ηᵀξ, in one GEMM pass over B.
    let keep = T::of(1.0 - cfg.lr * cfg.decay);
    let step = T::of(cfg.lr / vectors.max(1) as f64);
    let mut b = std::mem::take(&mut layer.params_mut().feedback);
    layer.weight_grad(&xi, &eta, &mut b, keep, step);
    layer.params_mut().feedback = b;
}

/// `M = B`, with `B` learned in mirror mode.
#[derive(Clone, Debug)]
pub struct WeightMirror {
    pub cfg: MirrorConfig,
}

impl WeightMirror {
    fn mirror<T: Real>(
        &self,
        layers: &mut [&mut dyn WeightLayer<T>],
        batches: usize,
        rng: &mut crate::Rng,
    ) {
        for _ in 0..batches {
            for layer in layers.iter_mut() {
                mirror_step(&mut **layer, &self.cfg, rng);
            }
        }
    }
}

impl<T: Real> Rule<T> for WeightMirror {
    fn kind(&self) -> RuleKind {
        RuleKind::WeightMirror
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn init_feedback(&self, p: &mut WeightParams<T>) {
        if self.cfg.init == MirrorInit::Zero {
            p.feedback.apply(|_| T::zero());
        }
    }
    fn before_training(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.mirror(layers, self.cfg.warmup_batches, rng);
    }
    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.mirror(layers, self.cfg.batches_per_step, rng);
    }
}
