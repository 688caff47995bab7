//! Information alignment (Kunin et al. 2020, "Two Routes to Scalable Credit Assignment without
//! Weight Symmetry", §4; their released `Alignments/alignment.py`, `Information`): `B` descends
//! three of the paper's primitives, measured on a layer's input `x` and its linear output
//! `r = x Wᵀ` (no bias, no nonlinearity), with `x̂ = r B` the input reconstructed through `B`:
//!
//! ```text
//! R_IA = α R_amp + β R_null + γ R_decay
//! R_amp  = −(1/N) Σ_n (W x_n)·(B x_n)        R_null = (1/N) Σ_n ‖r_n B‖²
//! R_decay = ‖W‖² + ‖B‖²
//! ∂R_IA/∂B = −(α/N) rᵀ x + (2β/N) rᵀ x̂ + 2γ B            (rᵀ x = grad_W(x, r))
//! B ← (1 − 2η_B γ) B + (η_B/N) (α grad_W(ξ, r) − 2β grad_W(x̂, r))
//! ```
//!
//! in nowt's convention (`B` has `W`'s shape, `δ_in = δ_out · B`; `W` takes no gradient from
//! `R`). For a convolution `x̂` is the layer's transpose of `r` through `B`, and each tap's data
//! term is averaged over the `N·r_t` (input, output) pairs that reached it, as in the weight
//! mirror ([`super::weight_mirror::mirror_step`]). With `ξ ~ N(0, σ²I)` on a linear layer,
//! `E[rᵀξ]/N = σ²W` and `E[rᵀx̂]/N = σ²WWᵀB`, so `B` settles where
//!
//! ```text
//! (β σ² W Wᵀ + γ I) B = (α σ² / 2) W
//! ```
//!
//! and with `β = 0`, `α = 1`, `γ = λ_WM/2` the rule is the weight mirror (paper eq. 7) step for
//! step. Assumptions: like the mirror, nowt drives the primitives with noise `ξ` (the released
//! code's `input_distribution = normal`; its default uses the layer's training input, which
//! nowt's rule hooks do not see), steps `B` with its own rate `η_B` on the mirror's schedule
//! (warm-up batches, then one noise batch after every training step) rather than with the
//! network's optimiser, and skips the first weight layer, whose `B` carries no error.

use serde::{Deserialize, Serialize};

use super::weight_mirror::{draw_noise, tap_step, MirrorNoise, NoiseRule, NoiseStep};
use super::{Knob, RuleInfo, RuleKind};
use crate::params::WeightLayer;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::InformationAlignment,
    name: "information-alignment",
    aliases: &["ia"],
    summary: "M = B, B descends α R_amp + β R_null + γ(‖W‖² + ‖B‖²) on noise after every step; \
              β = 0 is the weight mirror (Kunin et al. 2020)",
    knobs: &[
        Knob {
            key: "ia.sigma",
            flag: "ia-sigma",
            doc: "noise std σ (default 1)",
        },
        Knob {
            key: "ia.lr",
            flag: "ia-lr",
            doc: "η_B, B's learning rate (default 0.01)",
        },
        Knob {
            key: "ia.alpha",
            flag: "ia-alpha",
            doc: "α, the amplification primitive's weight (default 1)",
        },
        Knob {
            key: "ia.beta",
            flag: "ia-beta",
            doc: "β, the null primitive's weight (default 0.1; 0 is the weight mirror)",
        },
        Knob {
            key: "ia.gamma",
            flag: "ia-gamma",
            doc: "γ, the decay primitive's weight (default 0.5)",
        },
        Knob {
            key: "ia.batch_size",
            flag: "ia-batch-size",
            doc: "noise samples per batch N (default 0: the training batch)",
        },
        Knob {
            key: "ia.warmup_batches",
            flag: "ia-warmup-batches",
            doc: "noise batches before training (default 500, as the mirror)",
        },
    ],
    build: |cfg, batch_size| {
        let mut cfg = cfg.ia.clone();
        if cfg.batch_size == 0 {
            cfg.batch_size = batch_size;
        }
        Box::new(InformationAlignment { cfg })
    },
};

/// Information alignment's coefficients and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InformationConfig {
    /// Noise standard deviation `σ`. Default 1.
    pub sigma: f64,
    /// `η_B`. Default 0.01, the mirror's.
    pub lr: f64,
    /// `α`, the weight of `R_amp`. Default 1.
    pub alpha: f64,
    /// `β`, the weight of `R_null`. Default 0.1 (0: the weight mirror).
    pub beta: f64,
    /// `γ`, the weight of `R_decay`. Default 0.5 (with `α = 1`, `σ = 1`, `β = 0`: `B → W`).
    pub gamma: f64,
    /// Noise samples per batch `N`; 0 means the training batch size. Default 0.
    pub batch_size: usize,
    /// Noise batches before training starts. Default 500, the mirror's warm-up.
    pub warmup_batches: usize,
}

impl Default for InformationConfig {
    fn default() -> Self {
        Self {
            sigma: 1.0,
            lr: 0.01,
            alpha: 1.0,
            beta: 0.1,
            gamma: 0.5,
            batch_size: 0,
            warmup_batches: 500,
        }
    }
}

/// One noise batch for one layer: `B ← (1 − 2η_B γ) B + (η_B/N) (α grad_W(ξ, r) − 2β grad_W(x̂, r))`,
/// `r = ξ Wᵀ`, `x̂` = the layer's transpose of `r` through `B`, each tap's data term averaged
/// over the noise vectors that reached it.
///
/// `grad_W(x, r)` is linear in `x` (`Σ r ⊗ col(x)`), so the two data terms are one pass:
/// `grad_W(αξ − 2βx̂, r)` — three convolution passes a noise batch (forward, transpose, weight
/// gradient) where the two terms taken apart are four.
pub fn information_step<T: Real>(
    layer: &mut dyn WeightLayer<T>,
    cfg: &InformationConfig,
    rng: &mut crate::Rng,
) {
    let n = cfg.batch_size.max(1);
    let xi = draw_noise(&*layer, n, cfg.sigma, MirrorNoise::Gaussian, rng);
    let r = layer.linear(&xi, &layer.params().w);
    let mut g = Tensor::zeros(&[0]);
    if cfg.beta == 0.0 {
        layer.weight_grad(&xi, &r, &mut g, T::zero(), T::of(cfg.alpha));
    } else {
        let x_hat = layer.input_error(&r, &layer.params().feedback, xi.shape());
        let (alpha, two_beta) = (T::of(cfg.alpha), T::of(2.0 * cfg.beta));
        let z = xi.zip_map(&x_hat, |x, h| alpha * x - two_beta * h);
        layer.weight_grad(&z, &r, &mut g, T::zero(), T::one());
    }
    tap_step(layer, &g, cfg.lr, n, 1.0 - 2.0 * cfg.lr * cfg.gamma);
}

/// `M = B`, `B` stepped down `R_IA` on noise.
pub type InformationAlignment = NoiseRule<InformationConfig>;

impl NoiseStep for InformationConfig {
    const KIND: RuleKind = RuleKind::InformationAlignment;
    fn warmup_batches(&self) -> usize {
        self.warmup_batches
    }
    fn step<T: Real>(&self, layer: &mut dyn WeightLayer<T>, rng: &mut crate::Rng) {
        information_step(layer, self, rng)
    }
}
