//! Backprop: the error crosses a layer through the transpose of its forward weights,
//! `δ_l = φ'(a_l) ⊙ W_{l+1}ᵀ δ_{l+1}` — weight transport. The reference every rule is measured
//! against.

use std::borrow::Cow;

use super::{Rule, RuleInfo, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::Backprop,
    name: "backprop",
    aliases: &["bp"],
    summary: "M = W (weight transport; the reference)",
    knobs: &[],
    build: |_, _| Box::new(Backprop),
};

/// `M = W`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Backprop;

impl<T: Real> Rule<T> for Backprop {
    fn kind(&self) -> RuleKind {
        RuleKind::Backprop
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.w)
    }
}
