//! Symmetric alignment (Kunin et al. 2020, "Two Routes to Scalable Credit Assignment without
//! Weight Symmetry", §4): `B` descends a regulariser built from two of the paper's primitives,
//!
//! ```text
//! R_SA = α R_decay + β R_self,   R_decay = ‖W‖² + ‖B‖²,   R_self = −tr(Wᵀ B) = −Σ W ⊙ B
//! ∂R_SA/∂B = 2α B − β W
//! B ← B − η_B ∂R_SA/∂B = (1 − 2 η_B α) B + η_B β W        after every training step
//! ```
//!
//! (in nowt's convention, where `B` has `W`'s shape; `W` takes no gradient from `R`). On a
//! frozen `W`, `B − βW/(2α)` shrinks by `(1 − 2η_B α)` per step: `B` settles at `βW/(2α)`,
//! `∠(W, B) → 0`. The paper adds `R` to the training loss and minimises both with one optimiser;
//! nowt steps `B` by plain gradient descent with its own rate `η_B` after each training step,
//! as it does for the weight mirror (assumption: momentum and the schedule of `W`'s optimiser do
//! not reach `B`). The first weight layer's `B` carries no error and is not updated.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Knob, Rule, RuleInfo, RuleKind};
use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::SymmetricAlignment,
    name: "symmetric-alignment",
    aliases: &["sa"],
    summary: "M = B, B ← (1 − 2η_B α) B + η_B β W after every step: descends \
              α(‖W‖² + ‖B‖²) − β tr(WᵀB) (Kunin et al. 2020)",
    knobs: &[
        Knob {
            key: "sa.lr",
            flag: "sa-lr",
            doc: "η_B, B's learning rate (default 0.01)",
        },
        Knob {
            key: "sa.alpha",
            flag: "sa-alpha",
            doc: "α, the decay primitive's weight (default 0.5)",
        },
        Knob {
            key: "sa.beta",
            flag: "sa-beta",
            doc: "β, the self primitive's weight (default 1; B settles at βW/(2α))",
        },
    ],
    build: |cfg, _| {
        Box::new(SymmetricAlignment {
            cfg: cfg.sa.clone(),
        })
    },
};

/// Symmetric alignment's coefficients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SymmetricConfig {
    /// `η_B`. Default 0.01: with `α = 0.5`, `B` averages `W` over ~100 steps, as the weight
    /// mirror's defaults do.
    pub lr: f64,
    /// `α`, the weight of `R_decay`. Default 0.5.
    pub alpha: f64,
    /// `β`, the weight of `R_self`. Default 1 (with `α = 0.5`, `B → W`).
    pub beta: f64,
}

impl Default for SymmetricConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            alpha: 0.5,
            beta: 1.0,
        }
    }
}

/// `M = B`, `B` stepped down `R_SA` after every training step.
#[derive(Clone, Debug)]
pub struct SymmetricAlignment {
    pub cfg: SymmetricConfig,
}

impl<T: Real> Rule<T> for SymmetricAlignment {
    fn kind(&self) -> RuleKind {
        RuleKind::SymmetricAlignment
    }

    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }

    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], _rng: &mut crate::Rng) {
        let keep = T::of(1.0 - 2.0 * self.cfg.lr * self.cfg.alpha);
        let pull = T::of(self.cfg.lr * self.cfg.beta);
        for layer in layers.iter_mut().skip(1) {
            let p = layer.params_mut();
            p.feedback.zip_apply(&p.w, |b, w| keep * b + pull * w);
        }
    }
}
