//! Max and average pooling over `k × k` windows, `[N, C, H, W] → [N, C, H_o, W_o]` with
//! `H_o = (H + 2p − k) / s + 1`. No weights: the same local derivative under every rule.

use rayon::prelude::*;

use super::{Backward, Layer};
use crate::tensor::{Real, Tensor};

/// Which statistic of the window a [`Pool2d`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// `y = max_window x` (padding never wins); `δ` goes to the first maximal position.
    Max,
    /// `y = Σ_window x / k²` (padding counts as zeros, PyTorch's `count_include_pad`);
    /// `δ / k²` goes to every position of the window.
    Avg,
}

/// A pooling layer with window `k`, stride `stride` and zero padding `pad`.
#[derive(Clone, Debug)]
pub struct Pool2d {
    pub name: String,
    pub kind: PoolKind,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pool2d {
    pub fn new(name: &str, kind: PoolKind, k: usize, stride: usize, pad: usize) -> Self {
        assert!(
            k > 0 && stride > 0 && pad < k,
            "{name}: pooling needs k > 0, stride > 0 and pad < k"
        );
        Self {
            name: name.to_string(),
            kind,
            k,
            stride,
            pad,
        }
    }

    /// The output size for an input size.
    pub fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.pad - self.k) / self.stride + 1
    }

    /// For each output position `o` of one `h × w` plane, calls `f(o, taps)` with the input
    /// positions of its window that lie inside the plane.
    fn windows(
        &self,
        h: usize,
        w: usize,
        mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>),
    ) {
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let range = |o: usize, n: usize| {
            let start = (o * self.stride) as isize - self.pad as isize;
            let lo = start.max(0) as usize;
            let hi = ((start + self.k as isize).max(0) as usize).min(n);
            lo..hi
        };
        for oi in 0..ho {
            for oj in 0..wo {
                let cols = range(oj, w);
                let mut taps = range(oi, h).flat_map(|i| cols.clone().map(move |j| i * w + j));
                f(oi * wo + oj, &mut taps);
            }
        }
    }
}

impl<T: Real> Layer<T> for Pool2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        let s = x.shape();
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let inv = T::one() / T::of((self.k * self.k) as f64);
        let mut y = Tensor::zeros(&[n, c, ho, wo]);
        y.data_mut()
            .par_chunks_mut(ho * wo)
            .zip(x.data().par_chunks(h * w))
            .for_each(|(out, plane)| {
                self.windows(h, w, |o, taps| {
                    out[o] = match self.kind {
                        PoolKind::Max => taps
                            .map(|i| plane[i])
                            .fold(T::of(f64::NEG_INFINITY), |m, v| if v > m { v } else { m }),
                        PoolKind::Avg => taps.map(|i| plane[i]).sum::<T>() * inv,
                    };
                })
            });
        y
    }

    fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        if !need_delta_in {
            return None;
        }
        let s = x.shape();
        let (h, w) = (s[2], s[3]);
        let plane_out = y.shape()[2] * y.shape()[3];
        let inv = T::one() / T::of((self.k * self.k) as f64);
        let mut dx = Tensor::zeros(s);
        dx.data_mut()
            .par_chunks_mut(h * w)
            .zip(x.data().par_chunks(h * w))
            .zip(y.data().par_chunks(plane_out))
            .zip(delta.data().par_chunks(plane_out))
            .for_each(|(((dplane, plane), yp), dp)| {
                self.windows(h, w, |o, mut taps| match self.kind {
                    PoolKind::Max => {
                        if let Some(i) = Iterator::find(&mut taps, |&i| plane[i] == yp[o]) {
                            dplane[i] += dp[o];
                        }
                    }
                    PoolKind::Avg => taps.for_each(|i| dplane[i] += dp[o] * inv),
                })
            });
        Some(dx)
    }
}
