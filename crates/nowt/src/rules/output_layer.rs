//! The output-layer ablation (Xiao et al. 2018 ran it on sign symmetry): the top weight layer
//! sends its error down through `W`, as backprop does, and every layer below through the
//! chosen rule's `M`:
//!
//! ```text
//! δ_in = δ_out · W   at the output layer,   δ_in = source · M_rule   below it
//! ```
//!
//! It isolates how much of a rule's gap to backprop comes from the top layer's feedback. Not a
//! rule of its own: it wraps one, and everything else (how `B` starts and changes, Kolen-Pollack's
//! shared update) stays the wrapped rule's, the output layer's `B` included (it then carries no
//! error).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{FeedbackInit, Rule, RuleKind, Source, Top};
use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};

/// How the output layer sends its error down (config key `output_layer_rule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputLayerRule {
    /// The trained rule, as for every other layer. The default.
    #[default]
    Same,
    /// Backprop: `M = W` at the top weight layer.
    Backprop,
}

/// `rule` with the output layer (the weight layer named `output`) under `choice`.
pub fn with_output_layer<T: Real>(
    rule: Box<dyn Rule<T>>,
    choice: OutputLayerRule,
    output: &str,
) -> Box<dyn Rule<T>> {
    match choice {
        OutputLayerRule::Same => rule,
        OutputLayerRule::Backprop => Box::new(OutputBackprop {
            inner: rule,
            output: output.to_string(),
        }),
    }
}

struct OutputBackprop<T: Real> {
    inner: Box<dyn Rule<T>>,
    output: String,
}

impl<T: Real> Rule<T> for OutputBackprop<T> {
    fn kind(&self) -> RuleKind {
        self.inner.kind()
    }

    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        if p.name == self.output {
            Cow::Borrowed(&p.w)
        } else {
            self.inner.backward_matrix(p)
        }
    }

    fn backward_source<'a>(
        &self,
        p: &WeightParams<T>,
        delta: &'a Tensor<T>,
        top: Top<'a, T>,
    ) -> Source<'a, T> {
        if p.name == self.output {
            Source::PerPosition(delta)
        } else {
            self.inner.backward_source(p, delta, top)
        }
    }

    fn m_stands_for_w(&self, p: &WeightParams<T>, output: bool) -> bool {
        p.name == self.output || self.inner.m_stands_for_w(p, output)
    }

    fn init_feedback(&self, p: &mut WeightParams<T>, net: &mut FeedbackInit) {
        self.inner.init_feedback(p, net)
    }

    fn shared_update_decay(&self, weight_decay: f64) -> Option<f64> {
        self.inner.shared_update_decay(weight_decay)
    }

    fn warmup_batches(&self) -> usize {
        self.inner.warmup_batches()
    }

    fn warmup_batch(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.inner.warmup_batch(layers, rng)
    }

    fn after_step(&self, layers: &mut [&mut dyn WeightLayer<T>], rng: &mut crate::Rng) {
        self.inner.after_step(layers, rng)
    }
}
