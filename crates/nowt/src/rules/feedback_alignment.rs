//! Feedback alignment (Lillicrap et al. 2016): the error crosses a layer through fixed random
//! feedback weights, `δ_l = φ'(a_l) ⊙ B_{l+1}ᵀ δ_{l+1}`; `B` never changes. The forward weights
//! come to align with `B`, not the reverse.

use std::borrow::Cow;

use super::{FeedbackInit, Knob, Rule, RuleInfo, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::FeedbackAlignment,
    name: "feedback-alignment",
    aliases: &["fa"],
    summary: "M = B, B fixed at its random initialisation (Lillicrap et al. 2016)",
    knobs: &[Knob {
        key: "fa_init_scale",
        flag: "fa-init-scale",
        doc: "B₀'s scale relative to W's init std (default 1)",
    }],
    build: |cfg, _| {
        Box::new(FeedbackAlignment {
            init_scale: cfg.fa_init_scale,
        })
    },
};

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
    fn init_feedback(&self, p: &mut WeightParams<T>, _net: &mut FeedbackInit) {
        let s = T::of(self.init_scale);
        if s != T::one() {
            p.feedback.apply(|b| b * s);
        }
    }
}
