//! Max and average pooling over `k × k` windows, `[N, C, H, W] → [N, C, H_o, W_o]` with
//! `H_o = (H + 2p − k) / s + 1`. No weights: the same local derivative under every rule.

use std::ops::Range;

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

    /// For each output position `o` of one `h × w` plane, calls `f(o, rows, cols)` with the
    /// input rows and columns of its window that lie inside the plane: its taps are `i·w + j`
    /// for `i` in `rows`, `j` in `cols`, row by row.
    fn windows(&self, h: usize, w: usize, mut f: impl FnMut(usize, Range<usize>, Range<usize>)) {
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let range = |o: usize, n: usize| {
            let start = (o * self.stride) as isize - self.pad as isize;
            let lo = start.max(0) as usize;
            let hi = ((start + self.k as isize).max(0) as usize).min(n);
            lo..hi
        };
        for oi in 0..ho {
            for oj in 0..wo {
                f(oi * wo + oj, range(oi, h), range(oj, w));
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
                self.windows(h, w, |o, rows, cols| {
                    // Tap by tap, row by row: the maximum kept unless a tap is greater, the sum
                    // from −0 (as `Iterator::sum`, so that a window of −0 sums to −0).
                    let (mut max, mut sum) = (T::of(f64::NEG_INFINITY), T::of(-0.0));
                    for i in rows {
                        for &v in &plane[i * w..][cols.clone()] {
                            max = if v > max { v } else { max };
                            sum += v;
                        }
                    }
                    out[o] = match self.kind {
                        PoolKind::Max => max,
                        PoolKind::Avg => sum * inv,
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
                self.windows(h, w, |o, rows, cols| {
                    for i in rows.map(|r| r * w) {
                        for j in cols.clone() {
                            match self.kind {
                                // The first tap that equals the maximum takes all of δ.
                                PoolKind::Max if plane[i + j] == yp[o] => {
                                    dplane[i + j] += dp[o];
                                    return;
                                }
                                PoolKind::Max => {}
                                PoolKind::Avg => dplane[i + j] += dp[o] * inv,
                            }
                        }
                    }
                })
            });
        Some(dx)
    }
}
