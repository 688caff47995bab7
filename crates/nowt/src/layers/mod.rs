//! Layers: explicit forward/backward pairs. Forward returns the output; backward receives the
//! layer's input `x`, its output `y` and `δ = ∂loss/∂y`, and returns `δ` for `x`.
//!
//! Weight layers cross the rule seam (DESIGN.md §3): their weight gradient is the same under
//! every rule, and the error for the layer below is `δ_in = δ_out · M` with `M` chosen by the
//! [`Rule`]. Non-weight layers use their ordinary local derivative under every rule.

mod activation;
mod avx;
mod batch_norm;
mod conv;
mod linear;
mod loss;
mod pool;
mod residual;
mod shape;
mod winograd;

pub use activation::{Activation, ActivationKind};
pub use batch_norm::BatchNorm;
pub use conv::{conv2d_naive, Conv2d};
pub use linear::Linear;
pub use loss::{softmax_cross_entropy, target_error};
pub use pool::{Pool2d, PoolKind};
pub use residual::{Residual, Shortcut};
pub use shape::{GlobalAvgPool, Reshape, SubsamplePad};

pub use crate::params::{Momentum, Param, WeightLayer, WeightParams};
use crate::rules::{Rule, Source, Top};
use crate::tensor::{Real, Tensor};

/// The errors weight layers sent to their inputs during one backward pass, by layer name, top
/// to bottom (`None` where a layer computed none).
pub type DeltaRecord<T> = Vec<(String, Option<Tensor<T>>)>;

/// What a layer's backward pass needs besides its own tensors.
pub struct Backward<'a, T: Real> {
    /// Chooses how error crosses each weight layer.
    pub rule: &'a dyn Rule<T>,
    /// When set, every weight layer appends `(name, δ_in)` — `None` if it computes no `δ_in` —
    /// in the order backward visits them (top to bottom).
    pub record: Option<&'a mut DeltaRecord<T>>,
    /// What the network's top hands every layer when the pass started at the logits (what the
    /// broadcast rules send); empty for a lone layer.
    pub top: Top<'a, T>,
}

impl<'a, T: Real> Backward<'a, T> {
    /// A backward pass under `rule` that records nothing and has no output error (a lone layer).
    pub fn new(rule: &'a dyn Rule<T>) -> Self {
        Self {
            rule,
            record: None,
            top: Top::default(),
        }
    }

    /// Records a weight layer's `δ_in` if recording.
    pub fn record(&mut self, name: &str, delta_in: &Option<Tensor<T>>) {
        if let Some(r) = self.record.as_deref_mut() {
            r.push((name.to_string(), delta_in.clone()));
        }
    }
}

/// One stage of a network.
pub trait Layer<T: Real>: Send + Sync {
    /// A readable name, unique within a model (`fc1`, `relu1`, …).
    fn name(&self) -> &str;

    /// `y = f(x)`. `train` selects training behaviour where a layer has two.
    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T>;

    /// Given `x`, `y = forward(x)` and `delta = ∂loss/∂y`: stores any parameter gradients and,
    /// when `need_delta_in`, returns the error for `x`.
    fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>>;

    /// Appends the layer's weight layers (itself, or those inside it), bottom to top.
    fn collect_weights<'a>(&'a self, _out: &mut Vec<&'a dyn WeightLayer<T>>) {}
    fn collect_weights_mut<'a>(&'a mut self, _out: &mut Vec<&'a mut dyn WeightLayer<T>>) {}

    /// Appends the layer's plain trained parameters (no feedback weights: batch norm's γ, β).
    fn collect_params<'a>(&'a self, _out: &mut Vec<&'a Param<T>>) {}
    fn collect_params_mut<'a>(&'a mut self, _out: &mut Vec<&'a mut Param<T>>) {}

    /// Appends state that is not trained but must be checkpointed (running statistics).
    fn collect_buffers<'a>(&'a self, _out: &mut Vec<(String, &'a Tensor<T>)>) {}
    fn collect_buffers_mut<'a>(&'a mut self, _out: &mut Vec<(String, &'a mut Tensor<T>)>) {}

    /// Drops what the last forward kept for backward (a composite layer's inner activations):
    /// called after each layer when only the output is wanted.
    fn release(&mut self) {}

    /// Whether `backward` reads the layer's output `y` (an activation's derivative does; a
    /// convolution's or a plain batch norm's does not, so a residual block may write its sum
    /// over that output).
    fn reads_output(&self) -> bool {
        true
    }

    /// Whether the layer holds any weights.
    fn has_weights(&self) -> bool {
        let mut v = Vec::new();
        self.collect_weights(&mut v);
        !v.is_empty()
    }
}

/// Runs `layers` in order from `x`, returning every output (what backward needs).
pub fn forward_chain<T: Real>(
    layers: &mut [Box<dyn Layer<T>>],
    x: &Tensor<T>,
    train: bool,
) -> Vec<Tensor<T>> {
    let mut outs: Vec<Tensor<T>> = Vec::with_capacity(layers.len());
    for l in layers.iter_mut() {
        let y = l.forward(outs.last().unwrap_or(x), train);
        outs.push(y);
    }
    outs
}

/// Backward through `layers`, run forward from `x` into `outs`, from `delta = ∂loss/∂(last
/// output)`. Returns the error for `x` when `need_delta_in`; otherwise stops at the first layer
/// with weights, which computes no `δ_in` (nothing below it needs an error).
pub fn backward_chain<T: Real>(
    layers: &mut [Box<dyn Layer<T>>],
    x: &Tensor<T>,
    outs: &[Tensor<T>],
    delta: &Tensor<T>,
    ctx: &mut Backward<T>,
    need_delta_in: bool,
) -> Option<Tensor<T>> {
    let stop = if need_delta_in {
        0
    } else {
        layers.iter().position(|l| l.has_weights()).unwrap_or(0)
    };
    let mut owned: Option<Tensor<T>> = None;
    for i in (stop..layers.len()).rev() {
        let input = if i == 0 { x } else { &outs[i - 1] };
        let d = owned.as_ref().unwrap_or(delta);
        owned = Some(layers[i].backward(input, &outs[i], d, ctx, i > stop || need_delta_in)?);
    }
    owned.or_else(|| need_delta_in.then(|| delta.clone()))
}

/// The seam (DESIGN.md §3), the same for every weight layer: `grad_W` from `x` and `δ_out`
/// under every rule (written into its buffer, no allocation), then — when asked — the error for
/// the layer below through the rule's matrix, `δ_in = input_error(source, M)`, recorded by name.
/// `source` is `δ_out` under every rule but direct feedback alignment (the output error, the
/// same at every one of `δ_out`'s positions: [`WeightLayer::broadcast_input_error`]);
/// [`WeightLayer::input_error`] is the layer's transpose,
/// `source · M` (linear) or the input gradient of a convolution with kernel `M`. (Bias
/// gradients, which differ in shape per layer, are the layer's own.)
pub fn seam_backward<T: Real, L: WeightLayer<T>>(
    layer: &mut L,
    x: &Tensor<T>,
    delta: &Tensor<T>,
    ctx: &mut Backward<T>,
    need_delta_in: bool,
) -> Option<Tensor<T>> {
    let mut g = std::mem::take(&mut layer.params_mut().grad_w);
    layer.weight_grad(x, delta, &mut g, T::zero(), T::one());
    layer.params_mut().grad_w = g;
    let d = need_delta_in.then(|| {
        let p = layer.params();
        let m = ctx.rule.backward_matrix(p);
        match ctx.rule.backward_source(p, delta, ctx.top) {
            Source::PerPosition(source) => layer.input_error(source, &m, x.shape()),
            Source::Broadcast { e, spread } => {
                layer.broadcast_input_error(e, &m, x.shape(), spread)
            }
        }
    });
    ctx.record(&layer.params().name, &d);
    d
}
