//! Direct random target projection (Frenkel, Lefebvre & Bol 2021, DRTP): every weight layer
//! sends down a fixed random projection of the one-hot *target*, not of any error — the target
//! stands in for the error's sign (the true class's entry of `e = p/N − t/N` is always
//! negative, every other entry positive):
//!
//! ```text
//! δ_in = (−t/N) · D                  linear,  t: [N, classes] one-hot,  D: [classes, in]
//! δ_in = conv2d_input_grad(−t̄/N, D)  conv,    t̄ tiled over the output positions (as DFA's e)
//! ```
//!
//! so the hidden error is `δ_l = φ'(a_l) ⊙ ((−t/N) · D_{l+1})` (Frenkel et al.'s
//! `δy_k = (B_kᵀ y*) ⊙ f'(y_k)`): it depends on neither the network's output nor any weight
//! above, so a layer can learn as soon as its forward pass is done (no update locking). The
//! output layer learns from the true error: its `grad_W` is `eᵀ h`, as under every rule.
//! `D` is drawn exactly as direct feedback alignment's, from the same stream, so DRTP and DFA
//! runs of one seed share `D` and differ only in what crosses it.
//!
//! Departures from the paper's code, each kept for a reason: the paper sends `+t` (unscaled);
//! nowt sends `−t/N`, the target's share of the mean loss's `e`, so that DRTP and DFA agree in
//! sign on the true class and in scale per sample (`D` is symmetric about 0, so the sign does
//! not change what DRTP can learn, only which `D` a seed gives). On a convolution the paper
//! draws a `D` for every output position; nowt tiles one `D` over the positions, as its DFA
//! does, so that DRTP runs on every architecture DFA does (`rules.drtp_spread` shares the
//! target among the positions as `rules.dfa_spread` shares `e`). `grad_W` is unchanged, as
//! under every rule.

use std::borrow::Cow;

use super::direct_feedback_alignment::{direct_matrix, draw_direct};
use super::{FeedbackInit, Knob, Rule, RuleInfo, RuleKind, Source, Top};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::DirectRandomTargetProjection,
    name: "direct-random-target-projection",
    aliases: &["drtp"],
    summary: "δ_in = (−t/N)·D: the one-hot target through a fixed random D [classes, in], \
              no error crosses any layer; B unused (Frenkel, Lefebvre & Bol 2021)",
    knobs: &[
        Knob {
            key: "drtp_init_scale",
            flag: "drtp-init-scale",
            doc: "D's scale relative to W's init std (default 1)",
        },
        Knob {
            key: "drtp_spread",
            flag: "drtp-spread",
            doc: "a convolution's output positions each receive (−t/N)/(H_o·W_o), not the \
                  whole target term (default false, as DFA's)",
        },
    ],
    build: |cfg, _| {
        Box::new(DirectRandomTargetProjection {
            init_scale: cfg.drtp_init_scale,
            spread: cfg.drtp_spread,
        })
    },
};

/// `δ_in = (−t̄/N) · D`, `D ~ N(0, (init_scale · init_std)²)` fixed.
#[derive(Clone, Copy, Debug)]
pub struct DirectRandomTargetProjection {
    pub init_scale: f64,
    /// Each of a convolution's `H_o·W_o` output positions receives `(−t/N) / (H_o·W_o)`.
    pub spread: bool,
}

impl<T: Real> Rule<T> for DirectRandomTargetProjection {
    fn kind(&self) -> RuleKind {
        RuleKind::DirectRandomTargetProjection
    }

    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        direct_matrix(p)
    }

    fn backward_source<'a>(
        &self,
        _p: &WeightParams<T>,
        _delta: &'a Tensor<T>,
        top: Top<'a, T>,
    ) -> Source<'a, T> {
        Source::Broadcast {
            e: top
                .target
                .expect("direct random target projection needs the targets"),
            spread: self.spread,
        }
    }

    /// `D` never stands where `W` does: even at the output layer it carries the target, not
    /// the layer's error.
    fn m_stands_for_w(&self, _p: &WeightParams<T>, _output: bool) -> bool {
        false
    }

    fn init_feedback(&self, p: &mut WeightParams<T>, net: &mut FeedbackInit) {
        draw_direct(p, net, self.init_scale);
    }
}
