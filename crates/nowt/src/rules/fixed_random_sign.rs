//! Fixed random-magnitude sign-concordant feedback, frSF (Liao, Leibo & Poggio 2016; the name
//! is BioTorch's): the feedback path knows `W`'s signs and nothing of its magnitudes,
//!
//! ```text
//! M = |R| ⊙ sign(W),    R ~ N(0, init_std²) drawn once
//! ```
//!
//! so `sign M = sign W` entry by entry (sign concordance 1) while the magnitudes are
//! half-normal, `E|M| = init_std · √(2/π)`, `E[M²] = init_std²`, and unrelated to `|W|`. `B`
//! holds `|R|`.

use std::borrow::Cow;

use super::{FeedbackInit, Rule, RuleInfo, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::FixedRandomSign,
    name: "fixed-random-sign",
    aliases: &["frsf"],
    summary: "M = |R|·sign(W), R drawn once (Liao et al. 2016; BioTorch's frSF)",
    knobs: &[],
    build: |_, _| Box::new(FixedRandomSign),
};

/// `M = B ⊙ sign(W)` with `B = |R|` fixed.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedRandomSign;

/// `B ⊙ sign(W)` (with `sign 0 = 0`); `B ≥ 0` holds the magnitudes.
pub(super) fn magnitudes_times_signs<T: Real>(p: &WeightParams<T>) -> Tensor<T> {
    // A difference of two selects (no branches), so that it vectorises.
    p.feedback.zip_map(&p.w, |b, w| {
        let pos = if w > T::zero() { b } else { T::zero() };
        let neg = if w < T::zero() { b } else { T::zero() };
        pos - neg
    })
}

impl<T: Real> Rule<T> for FixedRandomSign {
    fn kind(&self) -> RuleKind {
        RuleKind::FixedRandomSign
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Owned(magnitudes_times_signs(p))
    }
    fn init_feedback(&self, p: &mut WeightParams<T>, _net: &mut FeedbackInit) {
        p.feedback.apply(|b| b.abs());
    }
}
