//! What the rules, the optimiser and the metrics see of a network: the parameters of a weight
//! layer (`W`, `B` of the same shape, bias, gradients, momentum) and the [`WeightLayer`]
//! interface, kept apart from `layers/` so that the rules need nothing of the layers' code.

use serde::{Deserialize, Serialize};

use crate::tensor::{Real, Tensor};

/// How `W` and `B` are first drawn (config key `init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// `N(0, init_std²)` with the model's scale (He et al. for ReLU layers). The default.
    #[default]
    He,
    /// Glorot & Bengio's `U(−a, a)`, `a = √(6 / (fan_in + fan_out))` (std
    /// `√(2 / (fan_in + fan_out))`), for `W` and `B` alike, as BioTorch draws them; the fans are
    /// PyTorch's (`fan_in = shape[1] · k²`, `fan_out = shape[0] · k²`).
    XavierUniform,
}

impl Init {
    pub fn name(self) -> &'static str {
        match self {
            Init::He => "he",
            Init::XavierUniform => "xavier-uniform",
        }
    }

    /// Xavier's standard deviation `√(2 / (fan_in + fan_out))` for a tensor of `shape`
    /// (`[out, in]` or `[out, in, kh, kw]`).
    pub fn xavier_std(shape: &[usize]) -> f64 {
        let receptive: usize = shape[2..].iter().product();
        let (fan_in, fan_out) = (shape[1] * receptive, shape[0] * receptive);
        (2.0 / (fan_in + fan_out) as f64).sqrt()
    }

    /// A tensor of `shape` from this family with standard deviation `std`: `N(0, std²)` under
    /// `he`, `U(−√3·std, √3·std)` under `xavier-uniform`.
    pub fn draw<T: Real>(self, shape: &[usize], std: f64, rng: &mut crate::Rng) -> Tensor<T> {
        match self {
            Init::He => Tensor::randn(shape, std, rng),
            Init::XavierUniform => Tensor::rand_uniform(shape, 3f64.sqrt() * std, rng),
        }
    }

    /// One magnitude `|r|` of a draw with standard deviation `std` (sign-concordant feedback).
    pub fn draw_magnitude<T: Real>(self, std: f64, rng: &mut crate::Rng) -> T {
        use rand::Rng as _;
        match self {
            Init::He => (T::standard_normal(rng) * T::of(std)).abs(),
            Init::XavierUniform => T::of(rng.random_range(0.0..3f64.sqrt() * std)),
        }
    }
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
    /// Adam's second moment (`None` under SGD).
    pub second_moment: Option<Tensor<T>>,
}

impl<T: Real> Param<T> {
    pub fn new(name: &str, value: Tensor<T>) -> Self {
        let grad = Tensor::zeros(value.shape());
        Self {
            name: name.to_string(),
            value,
            grad,
            momentum: None,
            second_moment: None,
        }
    }
}

/// Optimiser buffers for `W`, `B` and the bias, created on the first optimiser step: SGD's
/// momentum or Adam's first moment, and Adam's second moment.
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
    /// `B`, same shape as `W` under every rule but product feedback alignment, which keeps its
    /// learned `R: [mid, in]` here. Unused by backprop and sign symmetry.
    pub feedback: Tensor<T>,
    /// A rule's fixed matrix besides `B`: the broadcast rules' `D: [classes, in]` (conv:
    /// `[classes, C_in, kh, kw]`), product feedback alignment's `P: [out, mid]`; `None` under
    /// every other rule.
    pub direct: Option<Tensor<T>>,
    pub bias: Option<Tensor<T>>,
    /// `grad_W`, identical under every rule.
    pub grad_w: Tensor<T>,
    pub grad_bias: Option<Tensor<T>>,
    /// The standard deviation `W` was initialised with (sign symmetry's default scale).
    pub init_std: f64,
    /// The family `W` and `B` were drawn from; rules that draw feedback draw from it too.
    pub init: Init,
    pub momentum: Momentum<T>,
    /// Adam's second moments (empty under SGD).
    pub second_moment: Momentum<T>,
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
            direct: None,
            bias: bias.then(|| Tensor::zeros(&[out])),
            grad_w: Tensor::zeros(shape),
            grad_bias: bias.then(|| Tensor::zeros(&[out])),
            init_std,
            init: Init::He,
            momentum: Momentum::default(),
            second_moment: Momentum::default(),
        }
    }
}

/// `Σ_k a_k · layer.linear(x, m_k)`, term by term in order (`a₀ r₀ + a₁ r₁ + …`; a lone term
/// of weight 1 is its response as it is).
pub fn combined_response<T: Real, L: WeightLayer<T> + ?Sized>(
    layer: &L,
    x: &Tensor<T>,
    terms: &[(T, &Tensor<T>)],
) -> Tensor<T> {
    let (&(a0, m0), rest) = terms
        .split_first()
        .expect("response_grad: at least one term");
    let mut r = layer.linear(x, m0);
    if a0 != T::one() || !rest.is_empty() {
        r.apply(|v| a0 * v);
    }
    for &(a, m) in rest {
        r = r.zip_map(&layer.linear(x, m), |r, v| r + a * v);
    }
    r
}

/// A layer with weights: what the rules, the optimiser and the metrics need from it.
pub trait WeightLayer<T: Real>: Send + Sync {
    fn params(&self) -> &WeightParams<T>;
    fn params_mut(&mut self) -> &mut WeightParams<T>;
    /// The linear part alone through `m` (a tensor of `W`'s shape), `y = x mᵀ` (no bias): with
    /// `m = W` what the weight mirror drives with noise; activation alignment also passes `B`.
    fn linear(&self, x: &Tensor<T>, m: &Tensor<T>) -> Tensor<T>;
    /// The weight gradient for input `x` and output error `delta` (linear: `δᵀ x`), the same
    /// under every rule and in the mirror: `out ← keep · out + scale · grad_W(x, δ)`
    /// (`keep = 0`: `out` is overwritten; it is reshaped to `W`'s shape if it is not).
    fn weight_grad(&self, x: &Tensor<T>, delta: &Tensor<T>, out: &mut Tensor<T>, keep: T, scale: T);
    /// `grad_W(x, Σ_k a_k · linear(x, m_k))` for `terms = [(a_k, m_k)]` (at least one), into
    /// `out` as [`weight_grad`](Self::weight_grad) writes it: the weight gradient of the layer's
    /// own linear responses to `x`. The weight mirror's `ηᵀ ξ` is `[(1, W)]` (`η = ξ Wᵀ`);
    /// activation alignment's `[(β, W), (−2α, B)]`. A convolution computed by Winograd's method
    /// fuses the passes in the transformed domain, bit for bit these calls.
    fn response_grad(
        &self,
        x: &Tensor<T>,
        terms: &[(T, &Tensor<T>)],
        out: &mut Tensor<T>,
        keep: T,
        scale: T,
    ) {
        let r = combined_response(self, x, terms);
        self.weight_grad(x, &r, out, keep, scale);
    }
    /// The layer's transpose through `m` (a tensor of `W`'s shape, or `D`'s): the error for an
    /// input of shape `input_shape` from `source` at the output, `δ_in = source · M` (linear) or
    /// the input gradient of a convolution with kernel `M`. With `m = W` it is backprop's `δ_in`;
    /// the seam passes the rule's `M`.
    fn input_error(&self, source: &Tensor<T>, m: &Tensor<T>, input_shape: &[usize]) -> Tensor<T>;
    /// The error for an input of shape `input_shape` from `e: [N, rows of m]`, the same vector at
    /// every output position: `input_error(e tiled over the output positions, m)`, with `e`
    /// divided by the number of positions when `spread`. A linear layer has one position, so it
    /// is `e · M`; a convolution overrides it to skip the tiling.
    fn broadcast_input_error(
        &self,
        e: &Tensor<T>,
        m: &Tensor<T>,
        input_shape: &[usize],
        _spread: bool,
    ) -> Tensor<T> {
        self.input_error(e, m, input_shape)
    }
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
