//! Models: compositions of layers into a [`Network`]. No derivative code lives here.

mod lenet;
mod mlp;
mod resnet;

pub use lenet::lenet5;
pub use mlp::{mlp, mlp_shapes};
pub use resnet::{resnet_cifar, resnet_imagenet};

use crate::layers::{
    backward_chain, forward_chain, Backward, DeltaRecord, Layer, Param, WeightLayer,
};
use crate::rules::Rule;
use crate::tensor::{Real, Tensor};

/// A chain of layers, trained with any rule.
pub struct Network<T: Real> {
    pub layers: Vec<Box<dyn Layer<T>>>,
}

impl<T: Real> Network<T> {
    /// Runs every layer; returns each layer's output (the last is the logits).
    pub fn forward(&mut self, x: &Tensor<T>, train: bool) -> Vec<Tensor<T>> {
        forward_chain(&mut self.layers, x, train)
    }

    /// The logits alone, keeping only one activation at a time (evaluation of large batches).
    pub fn predict(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        let mut h: Option<Tensor<T>> = None;
        for layer in self.layers.iter_mut() {
            let y = layer.forward(h.as_ref().unwrap_or(x), train);
            layer.release();
            h = Some(y);
        }
        h.expect("a network has layers")
    }

    /// Backward through every layer from `delta = ∂loss/∂logits`, with `rule` choosing how the
    /// error crosses each weight layer. Parameter gradients are stored in the layers.
    ///
    /// If `record` is given, it receives `(name, δ_in)` for each weight layer, top to bottom
    /// (`None` for the first, which computes no `δ_in`: nothing below it needs an error).
    pub fn backward(
        &mut self,
        x: &Tensor<T>,
        outs: &[Tensor<T>],
        delta: Tensor<T>,
        rule: &dyn Rule<T>,
        record: Option<&mut DeltaRecord<T>>,
    ) {
        let mut ctx = Backward {
            rule,
            record,
            output_error: Some(&delta),
        };
        if let Some(r) = ctx.record.as_deref_mut() {
            r.clear();
        }
        backward_chain(&mut self.layers, x, outs, &delta, &mut ctx, false);
    }

    /// Where non-finite values first appear: the first layer whose output in `outs` (from
    /// [`Network::forward`]) has one, else the first weight layer whose parameters do.
    pub fn first_non_finite(&self, outs: &[Tensor<T>]) -> Option<String> {
        if let Some(i) = outs.iter().position(|o| !o.all_finite()) {
            return Some(format!("the output of layer {}", self.layers[i].name()));
        }
        self.weight_layers().iter().find_map(|l| {
            let p = l.params();
            let bad = !p.w.all_finite()
                || !p.feedback.all_finite()
                || p.bias.as_ref().is_some_and(|b| !b.all_finite());
            bad.then(|| format!("the parameters of layer {}", p.name))
        })
    }

    /// The weight layers, bottom to top.
    pub fn weight_layers(&self) -> Vec<&dyn WeightLayer<T>> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_weights(&mut out);
        }
        out
    }

    /// Trained parameters outside the rule seam (batch norm's γ and β), bottom to top.
    pub fn params(&self) -> Vec<&Param<T>> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_params(&mut out);
        }
        out
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_params_mut(&mut out);
        }
        out
    }

    /// Untrained state to checkpoint (running statistics), by name.
    pub fn buffers(&self) -> Vec<(String, &Tensor<T>)> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_buffers(&mut out);
        }
        out
    }

    pub fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_buffers_mut(&mut out);
        }
        out
    }

    pub fn weight_layers_mut(&mut self) -> Vec<&mut dyn WeightLayer<T>> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_weights_mut(&mut out);
        }
        out
    }
}
