//! Fully connected layer, `y = x Wᵀ + b`.

use super::{seam_backward, Backward, Layer, WeightLayer, WeightParams};
use crate::tensor::{gemm_into, matmul, Real, Tensor};

/// `y = x Wᵀ + b` with `x: [N, in]`, `W: [out, in]`, `b: [out]`, `y: [N, out]`.
///
/// Backward (DESIGN.md §3): `grad_W = δᵀ x`, `grad_b = Σ_n δ_n` under every rule, and
/// `δ_in = δ · M` with `M = rule.backward_matrix(..)` (`W` for backprop, `B` otherwise; direct
/// feedback alignment sends the output error, `δ_in = e · D`).
#[derive(Clone, Debug)]
pub struct Linear<T> {
    pub p: WeightParams<T>,
}

impl<T: Real> Linear<T> {
    /// A layer with `W ~ N(0, init_std²)`, independent `B ~ N(0, init_std²)`, zero bias.
    pub fn new(
        name: &str,
        inputs: usize,
        outputs: usize,
        init_std: f64,
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        Self {
            p: WeightParams::new(name, &[outputs, inputs], init_std, true, rng_w, rng_b),
        }
    }
}

impl<T: Real> Layer<T> for Linear<T> {
    fn reads_output(&self) -> bool {
        false
    }
    fn name(&self) -> &str {
        &self.p.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        let n = x.rows();
        let out = self.p.w.rows();
        // Start from the broadcast bias and accumulate x Wᵀ onto it (one pass over y).
        let mut y = match &self.p.bias {
            Some(b) => Tensor::from_vec(&[n, out], b.data().repeat(n)),
            None => Tensor::zeros(&[n, out]),
        };
        gemm_into(&mut y, T::one(), x, false, &self.p.w, true, T::one());
        y
    }

    fn backward(
        &mut self,
        x: &Tensor<T>,
        _y: &Tensor<T>,
        delta: &Tensor<T>,
        ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        if self.p.bias.is_some() {
            self.p.grad_bias = Some(delta.sum_rows());
        }
        seam_backward(self, x, delta, ctx, need_delta_in)
    }

    fn collect_weights<'a>(&'a self, out: &mut Vec<&'a dyn WeightLayer<T>>) {
        out.push(self);
    }
    fn collect_weights_mut<'a>(&'a mut self, out: &mut Vec<&'a mut dyn WeightLayer<T>>) {
        out.push(self);
    }
}

impl<T: Real> WeightLayer<T> for Linear<T> {
    fn params(&self) -> &WeightParams<T> {
        &self.p
    }
    fn params_mut(&mut self) -> &mut WeightParams<T> {
        &mut self.p
    }
    fn linear(&self, x: &Tensor<T>, m: &Tensor<T>) -> Tensor<T> {
        // [N, in] · [out, in]ᵀ → [N, out]
        matmul(x, false, m, true)
    }
    fn weight_grad(
        &self,
        x: &Tensor<T>,
        delta: &Tensor<T>,
        out: &mut Tensor<T>,
        keep: T,
        scale: T,
    ) {
        // [N, out]ᵀ · [N, in] → [out, in]
        if out.shape() != self.p.w.shape() {
            *out = Tensor::zeros(self.p.w.shape());
        }
        gemm_into(out, keep, delta, true, x, false, scale);
    }
    fn input_error(&self, source: &Tensor<T>, m: &Tensor<T>, input_shape: &[usize]) -> Tensor<T> {
        // δ_in = source · M: [N, out] · [out, in] → [N, in] (DFA: [N, classes] · [classes, in])
        let mut d = matmul(source, false, m, false);
        d.reshape(input_shape);
        d
    }
    fn input_shape(&self, n: usize) -> Vec<usize> {
        vec![n, self.p.w.cols()]
    }
}
