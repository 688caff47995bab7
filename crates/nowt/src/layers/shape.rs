//! Layers that only move or average values: reshape, global average pooling and the
//! subsample-and-pad shortcut.

use super::{Backward, Layer};
use crate::tensor::{Real, Tensor};

/// `[N, …] → [N, shape…]` (e.g. flat images to `[N, C, H, W]`, or back with `[D]`).
#[derive(Clone, Debug)]
pub struct Reshape {
    pub name: String,
    pub shape: Vec<usize>,
}

impl<T: Real> Layer<T> for Reshape {
    fn reads_output(&self) -> bool {
        false
    }
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
    fn reads_output(&self) -> bool {
        false
    }
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

/// He et al.'s (2016, §4.2) option A shortcut, for a block that strides by `stride` and widens
/// `C_in → C_out`: every `stride`-th position of every `stride`-th row (`x[:, :, ::s, ::s]`),
/// with `before = (C_out − C_in)/2` zero channels in front and the rest behind, no parameters:
///
/// ```text
/// y[n, c + before, i, j] = x[n, c, i·s, j·s],   every other y = 0
/// ```
///
/// Backward sends each output's error to the input position it came from (the rest get 0).
#[derive(Clone, Debug)]
pub struct SubsamplePad {
    pub name: String,
    pub stride: usize,
    pub c_out: usize,
}

impl SubsamplePad {
    /// `(C_in, H, W)` of `x` and `(before, H_out, W_out)`.
    fn geometry(&self, x: &[usize]) -> ([usize; 3], [usize; 3]) {
        let (c, h, w) = (x[1], x[2], x[3]);
        assert!(
            self.c_out >= c,
            "{}: {c} channels cannot pad to {}",
            self.name,
            self.c_out
        );
        let s = self.stride;
        (
            [c, h, w],
            [(self.c_out - c) / 2, (h - 1) / s + 1, (w - 1) / s + 1],
        )
    }
}

impl<T: Real> Layer<T> for SubsamplePad {
    fn reads_output(&self) -> bool {
        false
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        let n = x.shape()[0];
        let ([c, h, w], [before, ho, wo]) = self.geometry(x.shape());
        let mut y = Tensor::zeros(&[n, self.c_out, ho, wo]);
        let (xd, s) = (x.data(), self.stride);
        for (k, plane) in y.data_mut().chunks_mut(ho * wo).enumerate() {
            let (img, ch) = (k / self.c_out, k % self.c_out);
            if ch < before || ch >= before + c {
                continue;
            }
            let src = &xd[(img * c + ch - before) * h * w..][..h * w];
            for (i, row) in plane.chunks_mut(wo).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = src[i * s * w + j * s];
                }
            }
        }
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
        if !need_delta_in {
            return None;
        }
        let ([c, h, w], [before, ho, wo]) = self.geometry(x.shape());
        let mut dx = Tensor::zeros(x.shape());
        let (dd, s) = (delta.data(), self.stride);
        for (k, plane) in dx.data_mut().chunks_mut(h * w).enumerate() {
            let (img, ch) = (k / c, k % c);
            let src = &dd[(img * self.c_out + ch + before) * ho * wo..][..ho * wo];
            for i in 0..ho {
                for j in 0..wo {
                    plane[i * s * w + j * s] = src[i * wo + j];
                }
            }
        }
        Some(dx)
    }
}
