//! Direct feedback alignment (Nøkland 2016): every weight layer sends down a fixed random
//! projection of the network's *output* error `e = ∂loss/∂logits`, not the error that reached
//! it:
//!
//! ```text
//! δ_in = e · D                     linear,  e: [N, classes],  D: [classes, in]
//! δ_in = conv2d_input_grad(ē, D)   conv,    ē[n, k, i, j] = e[n, k] at every output position,
//!                                           D: [classes, C_in, kh, kw]
//! ```
//!
//! so the hidden error is `δ_l = φ'(a_l) ⊙ (e · D_{l+1})` (Nøkland's eq. 3): no error passes
//! from one hidden layer to the next. The convolutional form (tiling `e` over the layer's
//! output positions, as BioTorch does) makes DFA work on any architecture, residual blocks
//! included; a convolution computes it without the tiled tensor (`[N, classes, H_o, W_o]`): every
//! output position carries the same `e`, so `δ_in` at an input position is `e · D` summed over the
//! kernel taps that reach it (`Conv2d::broadcast_input_error`). BioTorch's form sends the whole
//! `e` to every position, so a convolution's `δ_in` is up to `H_o·W_o` times backprop's scale (a
//! global average pool divides backprop's error among the positions); `rules.dfa_spread` sends
//! each position `e / (H_o·W_o)` instead, as the pool does. `D ~ N(0, (init_scale · init_std)²)` with the layer's `W` init std, drawn once from
//! the rule's own stream and never changed; at the output layer `D` has `W`'s shape and DFA is
//! feedback alignment. `grad_W` is unchanged, as under every rule.

use std::borrow::Cow;

use super::{FeedbackInit, Knob, Rule, RuleInfo, RuleKind, Source, Top};
use crate::params::{Init, WeightParams};
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::DirectFeedbackAlignment,
    name: "direct-feedback-alignment",
    aliases: &["dfa"],
    summary: "δ_in = e·D: the output error e through a fixed random D [classes, in] \
              (conv: e tiled over the output positions); B unused (Nøkland 2016)",
    knobs: &[
        Knob {
            key: "dfa_init_scale",
            flag: "dfa-init-scale",
            doc: "D's scale relative to W's init std (default 1)",
        },
        Knob {
            key: "dfa_spread",
            flag: "dfa-spread",
            doc: "a convolution's output positions each receive e/(H_o·W_o), as a global \
                  average pool shares backprop's error, not the whole e (default false: \
                  BioTorch's form)",
        },
    ],
    build: |cfg, _| {
        Box::new(DirectFeedbackAlignment {
            init_scale: cfg.dfa_init_scale,
            spread: cfg.dfa_spread,
        })
    },
};

/// `δ_in = ē · D`, `D ~ N(0, (init_scale · init_std)²)` fixed.
#[derive(Clone, Copy, Debug)]
pub struct DirectFeedbackAlignment {
    pub init_scale: f64,
    /// Each of a convolution's `H_o·W_o` output positions receives `e / (H_o·W_o)`.
    pub spread: bool,
}

/// `e: [N, classes]` repeated at every position of `like: [N, C, …]`: `[N, classes, …]`. The
/// convolutional form written out (what a convolution's `broadcast_input_error` computes without
/// it): the tests' oracle.
pub fn tile_output_error<T: Real>(e: &Tensor<T>, like: &Tensor<T>) -> Tensor<T> {
    let positions: usize = like.shape()[2..].iter().product();
    let mut shape = like.shape().to_vec();
    shape[1] = e.cols();
    let data = e
        .data()
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, positions))
        .collect();
    Tensor::from_vec(&shape, data)
}

impl<T: Real> Rule<T> for DirectFeedbackAlignment {
    fn kind(&self) -> RuleKind {
        RuleKind::DirectFeedbackAlignment
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
                .error
                .expect("direct feedback alignment needs the network's output error"),
            spread: self.spread,
        }
    }

    /// At the output layer `e` is the layer's own `δ_out` and `D` stands where `W` does; below
    /// it `D` carries the output error, not the layer's.
    fn m_stands_for_w(&self, _p: &WeightParams<T>, output: bool) -> bool {
        output
    }

    fn init_feedback(&self, p: &mut WeightParams<T>, net: &mut FeedbackInit) {
        draw_direct(p, net, self.init_scale);
    }
}

/// A broadcast rule's `M`: the layer's own fixed `D`.
pub(super) fn direct_matrix<T: Real>(p: &WeightParams<T>) -> Cow<'_, Tensor<T>> {
    Cow::Borrowed(p.direct.as_ref().expect("D is drawn by init_feedback"))
}

/// Draws a broadcast rule's fixed `D: [classes, in]` (conv: `[classes, C_in, kh, kw]`),
/// `N(0, (init_scale · init_std)²)` from the rule's own stream — under Xavier-uniform with
/// Xavier's scale for `D`'s own shape (BioTorch's). The broadcast rules draw the same `D` from
/// one seed, so they differ only in what they send through it.
pub(super) fn draw_direct<T: Real>(p: &mut WeightParams<T>, net: &mut FeedbackInit, scale: f64) {
    let mut shape = p.w.shape().to_vec();
    shape[0] = net.classes;
    let std = match p.init {
        Init::He => p.init_std,
        Init::XavierUniform => Init::xavier_std(&shape),
    };
    p.direct = Some(p.init.draw(&shape, scale * std, &mut net.rng));
}
