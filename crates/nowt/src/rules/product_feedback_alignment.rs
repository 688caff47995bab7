//! Product feedback alignment (Li Ji-An & Benna 2024, PFA): the error crosses a layer through
//! an expanded intermediate population — first a fixed random `P: [out, mid]`, then a learned
//! `R: [mid, in]` (conv: `[mid, C_in, kh, kw]`, `P` a 1×1 convolution), `mid = r · out`:
//!
//! ```text
//! δ_mid = δ_out · P,   δ_in = δ_mid · R       so   M = P · R          (W's shape)
//! grad_R = δ_midᵀ x = Pᵀ · grad_W             (conv: the weight gradient of δ_mid, the same)
//! ```
//!
//! `R` learns from the signal that reaches the intermediate neurons and the layer's own input,
//! both local to it; the optimiser steps it beside `W` with the same rate, momentum and decay
//! `λ` (its own buffers), so `R − PᵀW` shrinks by `(1 − ηλ)` every plain-SGD step and `R`
//! converges to `PᵀW`: `M = P·R → PPᵀ W`, which approaches `W` as `r` grows (`E[PPᵀ] = I` with
//! `P ~ N(0, 1/mid)`). No feedback synapse is ever a copy of, or correlated with, the forward
//! synapse between the same two neurons: `B` in the weight-transport sense does not exist.
//!
//! nowt keeps `R` where other rules keep `B` (`feedback`, `R`'s own shape: the one rule whose
//! `B` does not have `W`'s shape) and `P` where the broadcast rules keep `D` (`direct`). It
//! computes `δ_in = δ_out · (P·R)` in one pass, the paper's code `(δ_out · P) · R` in two: the
//! same product, rounded differently. Init as the paper's code: `R` as `W` with `R`'s own fans,
//! `P` with variance `1/mid` (Xavier's uniform with gain `√((1 + 1/r)/2)`, or `N(0, 1/mid)`
//! under He), both from the rule's own stream; the first weight layer's `R`, which carries no
//! error, is never updated (as every rule's `B`).

use std::borrow::Cow;

use super::{FeedbackInit, Knob, Rule, RuleInfo, RuleKind};
use crate::params::{Init, WeightParams};
use crate::tensor::{matmul, Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::ProductFeedbackAlignment,
    name: "product-feedback-alignment",
    aliases: &["pfa"],
    summary: "M = P·R: a fixed random P [out, r·out] then a learned R [r·out, in], \
              grad_R = Pᵀ·grad_W with W's rate and decay (Li Ji-An & Benna 2024)",
    knobs: &[Knob {
        key: "pfa_expand",
        flag: "pfa-expand",
        doc: "r, the intermediate population's size per output unit (default 10, the paper's)",
    }],
    build: |cfg, _| {
        Box::new(ProductFeedbackAlignment {
            expand: cfg.pfa_expand,
        })
    },
};

/// `M = P·R`, `P` fixed, `R` stepped by the optimiser with `Pᵀ·grad_W`.
#[derive(Clone, Copy, Debug)]
pub struct ProductFeedbackAlignment {
    /// `r`: `mid = r · out`.
    pub expand: usize,
}

/// `P: [out, mid]` of layer `p`.
fn fixed<T: Real>(p: &WeightParams<T>) -> &Tensor<T> {
    p.direct.as_ref().expect("P is drawn by init_feedback")
}

impl<T: Real> Rule<T> for ProductFeedbackAlignment {
    fn kind(&self) -> RuleKind {
        RuleKind::ProductFeedbackAlignment
    }

    /// `M = P · R`, reshaped to `W`'s shape.
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        let mut m = matmul(fixed(p), false, &p.feedback, false);
        m.reshape(p.w.shape());
        Cow::Owned(m)
    }

    /// `R` takes the optimiser's step with `W`'s decay.
    fn shared_update_decay(&self, weight_decay: f64) -> Option<f64> {
        Some(weight_decay)
    }

    /// `grad_R = Pᵀ · grad_W`, in `R`'s shape.
    fn feedback_gradient(&self, p: &WeightParams<T>) -> Option<Tensor<T>> {
        let mut g = matmul(fixed(p), true, &p.grad_w, false);
        g.reshape(p.feedback.shape());
        Some(g)
    }

    fn init_feedback(&self, p: &mut WeightParams<T>, net: &mut FeedbackInit) {
        let mid = self.expand * p.w.shape()[0];
        let mut r_shape = p.w.shape().to_vec();
        r_shape[0] = mid;
        let r_std = match p.init {
            Init::He => p.init_std,
            Init::XavierUniform => Init::xavier_std(&r_shape),
        };
        p.feedback = p.init.draw(&r_shape, r_std, &mut net.rng);
        let p_shape = [p.w.shape()[0], mid];
        p.direct = Some(
            p.init
                .draw(&p_shape, (1.0 / mid as f64).sqrt(), &mut net.rng),
        );
    }
}
