//! Layers that only move or average values: reshape and global average pooling.

use super::{Backward, Layer};
use crate::tensor::{Real, Tensor};

/// `[N, …] → [N, shape…]` (e.g. flat images to `[N, C, H, W]`, or back with `[D]`).
#[derive(Clone, Debug)]
pub struct Reshape {
    pub name: String,
    pub shape: Vec<usize>,
}

impl<T: Real> Layer<T> for Reshape {
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        let mut y = x.clone();
        let mut s = vec![x.rows()];
        s.extend_from_slice(&self.shape);
        y.reshape(&s);
        y
    }
    fn backward(
        &mut self,
        x: &Tensor<T>,
        _y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        need_delta_in.then(|| {
            let mut d = delta.clone();
            d.reshape(x.shape());
            d
        })
    }
}

/// Global average pooling, `[N, C, H, W] → [N, C]`: `y[n,c] = mean_{h,w} x[n,c,h,w]`;
/// backward spreads `δ / (H·W)` over every position.
#[derive(Clone, Debug)]
pub struct GlobalAvgPool {
    pub name: String,
}

impl<T: Real> Layer<T> for GlobalAvgPool {
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let hw = x.len() / (n * c).max(1);
        let inv = T::one() / T::of(hw as f64);
        let data = x
            .data()
            .chunks_exact(hw)
            .map(|p| p.iter().copied().sum::<T>() * inv)
            .collect();
        Tensor::from_vec(&[n, c], data)
    }
    fn backward(
        &mut self,
        x: &Tensor<T>,
        _y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        need_delta_in.then(|| {
            let hw = x.len() / delta.len().max(1);
            let inv = T::one() / T::of(hw as f64);
            let data = delta
                .data()
                .iter()
                .flat_map(|&d| std::iter::repeat_n(d * inv, hw))
                .collect();
            Tensor::from_vec(x.shape(), data)
        })
    }
}
