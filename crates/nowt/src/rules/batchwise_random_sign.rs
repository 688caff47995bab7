//! Batchwise random-magnitude sign-concordant feedback, brSF (Liao, Leibo & Poggio 2016; the
//! name is BioTorch's): as [frSF](super::FixedRandomSign), but the magnitudes are redrawn after
//! every update of `W`,
//!
//! ```text
//! M_t = |R_t| ⊙ sign(W_t),    R_t ~ N(0, init_std²) independently at every step t
//! ```
//!
//! so no magnitude information survives from one batch to the next: sign concordance is 1 and
//! `E|M| = init_std · √(2/π)`. `B` holds `|R_t|`; the draws come from the run's rule-noise
//! stream (the one the weight mirror uses, saved in checkpoints), layer after layer, so that a
//! resumed run redraws exactly what an uninterrupted one would.

use std::borrow::Cow;

use super::fixed_random_sign::magnitudes_times_signs;
use super::{FeedbackInit, Rule, RuleInfo, RuleKind};
use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::BatchwiseRandomSign,
    name: "batchwise-random-sign",
    aliases: &["brsf"],
    summary: "M = |R|·sign(W), R redrawn every batch (Liao et al. 2016; BioTorch's brSF)",
    knobs: &[],
    build: |_, _| Box::new(BatchwiseRandomSign),
};

/// `M = B ⊙ sign(W)` with `B = |R|` redrawn after every step.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchwiseRandomSign;

impl<T: Real> Rule<T> for BatchwiseRandomSign {
    fn kind(&self) -> RuleKind {
        RuleKind::BatchwiseRandomSign
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Owned(magnitudes_times_signs(p))
    }
    fn init_feedback(&self, p: &mut WeightParams<T>, _net: &mut FeedbackInit) {
        p.feedback.apply(|b| b.abs());
    }
    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        // The first weight layer's `M` carries no error: nothing to redraw.
        for layer in layers.iter_mut().skip(1) {
            let p = layer.params_mut();
            let (init, std) = (p.init, p.init_std);
            for b in p.feedback.data_mut() {
                *b = init.draw_magnitude(std, rng);
            }
        }
    }
}
