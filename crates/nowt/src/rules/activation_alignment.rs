//! Activation alignment (Kunin et al. 2020, "Two Routes to Scalable Credit Assignment without
//! Weight Symmetry", §5; their released `Alignments/alignment.py`, `Activation`): `B` descends
//! two of the paper's primitives measured on a layer's input `x`, its forward output `r = x Wᵀ`
//! and the same input sent through `B`, `b = x Bᵀ` (no bias, no nonlinearity):
//!
//! ```text
//! R_AA = α R_sparse + β R_amp
//! R_sparse = (1/N) Σ_n (‖W x_n‖² + ‖B x_n‖²)        R_amp = −(1/N) Σ_n (W x_n)·(B x_n)
//! ∂R_AA/∂B = (2α/N) bᵀ x − (β/N) rᵀ x = (1/N) grad_W(x, 2α b − β r)
//! B ← B + (η_B/N) grad_W(ξ, β r − 2α b)
//! ```
//!
//! in nowt's convention (`B` has `W`'s shape, `δ_in = δ_out · B`; `W` takes no gradient from
//! `R`; the coefficients are named as in the released code: `α` weighs the sparsity primitive,
//! `β` the amplification). The decay of `B` is the data's own: with `ξ ~ N(0, σ²I)`,
//! `E[ΔB] = η_B σ² (β W − 2α B)`, so `B − βW/(2α)` shrinks by `(1 − 2η_B α σ²)` per noise batch
//! in expectation and `B` settles at `βW/(2α)` (`W` for the defaults α = 0.5, β = 1). For a
//! convolution both terms pass through the same `grad_W`, and each tap's sum is averaged over
//! the `N·r_t` (input, output) pairs that reached it, as in the weight mirror
//! ([`super::weight_mirror::mirror_step`]): the fixed point is exact tap by tap, padded or not.
//!
//! Assumptions: the paper drives `R_AA` with the layer's training input; nowt drives it with noise
//! `ξ` on the mirror's schedule (warm-up batches, then one noise batch after every training step;
//! the rule hooks do not see training inputs), which has the same fixed point wherever the input
//! covariance has full rank. `B` is stepped with its own rate `η_B`, not the network's optimiser.
//! The first weight layer is skipped: its `B` carries no error.

use serde::{Deserialize, Serialize};

use super::weight_mirror::{draw_noise, tap_step, MirrorNoise, NoiseRule, NoiseStep};
use super::{Knob, RuleInfo, RuleKind};
use crate::params::WeightLayer;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::ActivationAlignment,
    name: "activation-alignment",
    aliases: &["aa"],
    summary: "M = B, B descends α(‖Wξ‖² + ‖Bξ‖²) − β (Wξ)·(Bξ) on noise after every step: \
              B → βW/(2α) (Kunin et al. 2020)",
    knobs: &[
        Knob {
            key: "aa.sigma",
            flag: "aa-sigma",
            doc: "noise std σ (default 1)",
        },
        Knob {
            key: "aa.lr",
            flag: "aa-lr",
            doc: "η_B, B's learning rate (default 0.01)",
        },
        Knob {
            key: "aa.alpha",
            flag: "aa-alpha",
            doc: "α, the sparsity primitive's weight (default 0.5)",
        },
        Knob {
            key: "aa.beta",
            flag: "aa-beta",
            doc: "β, the amplification primitive's weight (default 1; B settles at βW/(2α))",
        },
        Knob {
            key: "aa.batch_size",
            flag: "aa-batch-size",
            doc: "noise samples per batch N (default 0: the training batch)",
        },
        Knob {
            key: "aa.warmup_batches",
            flag: "aa-warmup-batches",
            doc: "noise batches before training (default 500, as the mirror)",
        },
    ],
    build: |cfg, batch_size| {
        let mut cfg = cfg.aa.clone();
        if cfg.batch_size == 0 {
            cfg.batch_size = batch_size;
        }
        Box::new(ActivationAlignment { cfg })
    },
};

/// Activation alignment's coefficients and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivationConfig {
    /// Noise standard deviation `σ`. Default 1.
    pub sigma: f64,
    /// `η_B`. Default 0.01: with `α = 0.5`, `σ = 1`, `B` averages over ~100 noise batches, as
    /// the weight mirror's defaults do.
    pub lr: f64,
    /// `α`, the weight of `R_sparse`. Default 0.5.
    pub alpha: f64,
    /// `β`, the weight of `R_amp`. Default 1 (with `α = 0.5`, `B → W`).
    pub beta: f64,
    /// Noise samples per batch `N`; 0 means the training batch size. Default 0.
    pub batch_size: usize,
    /// Noise batches before training starts. Default 500, the mirror's warm-up.
    pub warmup_batches: usize,
}

impl Default for ActivationConfig {
    fn default() -> Self {
        Self {
            sigma: 1.0,
            lr: 0.01,
            alpha: 0.5,
            beta: 1.0,
            batch_size: 0,
            warmup_batches: 500,
        }
    }
}

/// One noise batch for one layer: `B ← B + (η_B/N) grad_W(ξ, β r − 2α b)`, `r = ξ Wᵀ`,
/// `b = ξ Bᵀ` (the layer's `linear` through `W` and through `B`), each tap's sum averaged over
/// the noise vectors that reached it.
pub fn activation_step<T: Real>(
    layer: &mut dyn WeightLayer<T>,
    cfg: &ActivationConfig,
    rng: &mut crate::Rng,
) {
    let n = cfg.batch_size.max(1);
    let xi = draw_noise(&*layer, n, cfg.sigma, MirrorNoise::Gaussian, rng);
    let p = layer.params();
    // grad_W(ξ, β r − 2α b), in one pass where the layer can fuse the three.
    let terms = [
        (T::of(cfg.beta), &p.w),
        (T::of(-2.0 * cfg.alpha), &p.feedback),
    ];
    let mut g = Tensor::zeros(&[0]);
    layer.response_grad(&xi, &terms, &mut g, T::zero(), T::one());
    tap_step(layer, &g, cfg.lr, n, 1.0);
}

/// `M = B`, `B` stepped down `R_AA` on noise.
pub type ActivationAlignment = NoiseRule<ActivationConfig>;

impl NoiseStep for ActivationConfig {
    const KIND: RuleKind = RuleKind::ActivationAlignment;
    fn warmup_batches(&self) -> usize {
        self.warmup_batches
    }
    fn step<T: Real>(&self, layer: &mut dyn WeightLayer<T>, rng: &mut crate::Rng) {
        activation_step(layer, self, rng)
    }
}
