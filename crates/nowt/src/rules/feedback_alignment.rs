//! Feedback alignment (Lillicrap et al. 2016): the error crosses a layer through fixed random
//! feedback weights, `δ_l = φ'(a_l) ⊙ B_{l+1}ᵀ δ_{l+1}`; `B` never changes. The forward weights
//! come to align with `B`, not the reverse.

use std::borrow::Cow;

use super::{Rule, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

/// `M = B`, `B₀ ~ N(0, (init_scale · init_std)²)`, fixed.
#[derive(Clone, Copy, Debug)]
pub struct FeedbackAlignment {
    pub init_scale: f64,
}

impl<T: Real> Rule<T> for FeedbackAlignment {
    fn kind(&self) -> RuleKind {
        RuleKind::FeedbackAlignment
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn init_feedback(&self, p: &mut WeightParams<T>) {
        let s = T::of(self.init_scale);
        if s != T::one() {
            p.feedback.apply(|b| b * s);
        }
    }
}
