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
pub use loss::softmax_cross_entropy;
pub use pool::{Pool2d, PoolKind};
pub use residual::{conv_bn, same_out, Residual};
pub use shape::{GlobalAvgPool, Reshape};

use crate::rules::Rule;
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
}

impl<'a, T: Real> Backward<'a, T> {
    /// A backward pass under `rule` that records nothing.
    pub fn new(rule: &'a dyn Rule<T>) -> Self {
        Self { rule, record: None }
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

/// A trained parameter outside the rule seam (batch norm's scale and shift): its value,
/// gradient and momentum buffer.
#[derive(Clone, Debug)]
pub struct Param<T> {
    /// Unique within a model, e.g. `bn1.gamma`.
    pub name: String,
    pub value: Tensor<T>,
    pub grad: Tensor<T>,
    pub momentum: Option<Tensor<T>>,
}

impl<T: Real> Param<T> {
    pub fn new(name: &str, value: Tensor<T>) -> Self {
        let grad = Tensor::zeros(value.shape());
        Self {
            name: name.to_string(),
            value,
            grad,
            momentum: None,
        }
    }
}

/// Momentum buffers, created on the first optimiser step.
#[derive(Clone, Debug, Default)]
pub struct Momentum<T> {
    pub w: Option<Tensor<T>>,
    pub feedback: Option<Tensor<T>>,
    pub bias: Option<Tensor<T>>,
}

/// The parameters of a weight layer: forward weights `W`, feedback weights `B` of the same
/// shape (DESIGN.md §2), an optional bias, their gradients and optimiser state.
#[derive(Clone, Debug)]
pub struct WeightParams<T> {
    /// A readable name, e.g. `fc1`.
    pub name: String,
    /// `W: [out, in]` (conv: `[C_out, C_in, kh, kw]`).
    pub w: Tensor<T>,
    /// `B`, same shape as `W`. Unused by backprop and sign symmetry.
    pub feedback: Tensor<T>,
    pub bias: Option<Tensor<T>>,
    /// `grad_W`, identical under every rule.
    pub grad_w: Tensor<T>,
    pub grad_bias: Option<Tensor<T>>,
    /// The standard deviation `W` was initialised with (sign symmetry's default scale).
    pub init_std: f64,
    pub momentum: Momentum<T>,
}

impl<T: Real> WeightParams<T> {
    /// `W ~ N(0, init_std²)` from `rng_w`, `B ~ N(0, init_std²)` from `rng_b` (a rule may
    /// rescale or replace it), bias zero.
    pub fn new(
        name: &str,
        shape: &[usize],
        init_std: f64,
        bias: bool,
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        let out = shape[0];
        Self {
            name: name.to_string(),
            w: Tensor::randn(shape, init_std, rng_w),
            feedback: Tensor::randn(shape, init_std, rng_b),
            bias: bias.then(|| Tensor::zeros(&[out])),
            grad_w: Tensor::zeros(shape),
            grad_bias: bias.then(|| Tensor::zeros(&[out])),
            init_std,
            momentum: Momentum::default(),
        }
    }
}

/// The seam (DESIGN.md §3), the same for every weight layer: `grad_W` from `x` and `δ_out`
/// under every rule (written into its buffer, no allocation), then — when asked — the error for
/// the layer below through the rule's matrix, `δ_in = input_error(M)`, recorded by name.
/// (Bias gradients, which differ in shape per layer, are the layer's own.)
pub fn seam_backward<T: Real, L: WeightLayer<T>>(
    layer: &mut L,
    x: &Tensor<T>,
    delta: &Tensor<T>,
    ctx: &mut Backward<T>,
    need_delta_in: bool,
    input_error: impl FnOnce(&L, &Tensor<T>) -> Tensor<T>,
) -> Option<Tensor<T>> {
    let mut g = std::mem::take(&mut layer.params_mut().grad_w);
    layer.weight_grad(x, delta, &mut g, T::zero(), T::one());
    layer.params_mut().grad_w = g;
    let d = need_delta_in.then(|| {
        let m = ctx.rule.backward_matrix(layer.params());
        input_error(layer, &m)
    });
    ctx.record(&layer.params().name, &d);
    d
}

/// A layer with weights: what the rules, the optimiser and the metrics need from it.
pub trait WeightLayer<T: Real>: Send + Sync {
    fn params(&self) -> &WeightParams<T>;
    fn params_mut(&mut self) -> &mut WeightParams<T>;
    /// The linear part alone, `y = x Wᵀ` (no bias): what the weight mirror drives with noise.
    fn linear(&self, x: &Tensor<T>) -> Tensor<T>;
    /// The weight gradient for input `x` and output error `delta` (linear: `δᵀ x`), the same
    /// under every rule and in the mirror: `out ← keep · out + scale · grad_W(x, δ)`
    /// (`keep = 0`: `out` is overwritten; it is reshaped to `W`'s shape if it is not).
    fn weight_grad(&self, x: &Tensor<T>, delta: &Tensor<T>, out: &mut Tensor<T>, keep: T, scale: T);
    /// The shape of a batch of `n` inputs to this layer (for mirror noise).
    fn input_shape(&self, n: usize) -> Vec<usize>;
    /// For each tap of `W`'s trailing (spatial) axes, row-major, the number of `(input, output)`
    /// pairs per sample through which it sees its input rather than zero padding: one for a
    /// linear layer; for a convolution the output positions at which the tap falls inside the
    /// image ([`ConvGeom::tap_reach`](crate::tensor::ConvGeom::tap_reach)). The weight mirror
    /// averages each tap's `ηᵀξ` over exactly these noise vectors.
    fn tap_reach(&self) -> Vec<usize> {
        vec![1]
    }
}
