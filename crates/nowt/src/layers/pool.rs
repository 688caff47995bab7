//! Max and average pooling over `k × k` windows, `[N, C, H, W] → [N, C, H_o, W_o]` with
//! `H_o = (H + 2p − k) / s + 1`. No weights: the same local derivative under every rule.
//! Disjoint 2 × 2 windows (LeNet's, VGG's) take a path of their own, bit for bit the general
//! window walk, which stays as its test oracle ([`Pool2d::forward_reference`]).

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

    /// Whether the windows are the plane's disjoint 2 × 2 squares (`k` = `stride` = 2, no
    /// padding: LeNet's and VGG's pooling), which [`halve_forward`] and [`halve_backward`] take
    /// without the general window walk.
    fn halves(&self) -> bool {
        self.k == 2 && self.stride == 2 && self.pad == 0
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

impl Pool2d {
    /// `y` for `x`, by the [2 × 2 path](Self::halves) where it applies (`fast`) and by the
    /// general window walk otherwise.
    fn pool<T: Real>(&self, x: &Tensor<T>, fast: bool) -> Tensor<T> {
        let s = x.shape();
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let (ho, wo) = (self.out_len(h), self.out_len(w));
        let inv = T::one() / T::of((self.k * self.k) as f64);
        let mut y = Tensor::zeros(&[n, c, ho, wo]);
        let halves = fast && self.halves();
        y.data_mut()
            .par_chunks_mut(ho * wo)
            .zip(x.data().par_chunks(h * w))
            .for_each(|(out, plane)| {
                if halves {
                    return halve_forward(self.kind, plane, w, out, wo);
                }
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

    /// `δ_in` for `δ` at the output `y` of `x`, by the 2 × 2 path where it applies (`fast`)
    /// and by the general window walk otherwise.
    fn unpool<T: Real>(
        &self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        fast: bool,
    ) -> Tensor<T> {
        let s = x.shape();
        let (h, w) = (s[2], s[3]);
        let plane_out = y.shape()[2] * y.shape()[3];
        let inv = T::one() / T::of((self.k * self.k) as f64);
        let mut dx = Tensor::zeros(s);
        let halves = fast && self.halves();
        dx.data_mut()
            .par_chunks_mut(h * w)
            .zip(x.data().par_chunks(h * w))
            .zip(y.data().par_chunks(plane_out))
            .zip(delta.data().par_chunks(plane_out))
            .for_each(|(((dplane, plane), yp), dp)| {
                if halves {
                    return halve_backward(self.kind, plane, w, yp, dp, dplane);
                }
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
        dx
    }

    /// The forward by the general window walk alone, for any `k`, stride and padding: the
    /// test oracle of the 2 × 2 path, which must match it bit for bit.
    pub fn forward_reference<T: Real>(&self, x: &Tensor<T>) -> Tensor<T> {
        self.pool(x, false)
    }

    /// The backward (`δ_in`) by the general window walk alone: the 2 × 2 path's oracle.
    pub fn backward_reference<T: Real>(
        &self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
    ) -> Tensor<T> {
        self.unpool(x, y, delta, false)
    }
}

impl<T: Real> Layer<T> for Pool2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        self.pool(x, true)
    }

    fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        need_delta_in.then(|| self.unpool(x, y, delta, true))
    }
}

/// [`Pool2d::forward`] of one plane (row width `w`) over disjoint 2 × 2 windows into `out`
/// (row width `wo` = ⌊w/2⌋): the window's taps in the general walk's order — `x[2i][2j]`,
/// `x[2i][2j+1]`, `x[2i+1][2j]`, `x[2i+1][2j+1]` — so the maximum (kept unless a tap is greater)
/// and the sum (from −0) are bit for bit the general path's.
fn halve_forward<T: Real>(kind: PoolKind, plane: &[T], w: usize, out: &mut [T], wo: usize) {
    let inv = T::one() / T::of(4.0);
    for (oi, out_row) in out.chunks_exact_mut(wo).enumerate() {
        let (top, bottom) = (
            &plane[2 * oi * w..][..2 * wo],
            &plane[(2 * oi + 1) * w..][..2 * wo],
        );
        let rows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (y, (t, b)) in out_row.iter_mut().zip(rows) {
            let taps = [t[0], t[1], b[0], b[1]];
            *y = match kind {
                PoolKind::Max => {
                    taps.iter()
                        .fold(T::of(f64::NEG_INFINITY), |m, &v| if v > m { v } else { m })
                }
                PoolKind::Avg => taps.iter().fold(T::of(-0.0), |s, &v| s + v) * inv,
            };
        }
    }
}

/// [`Pool2d::backward`] of one plane over disjoint 2 × 2 windows: `dplane` (zeros on entry)
/// gets each output's `δ` at the window's first tap equal to its maximum (max), or `δ / 4` at
/// every tap (average), added to the zero as the general path adds it (so `−0` becomes `+0` as
/// there). The first equal tap is found by comparisons, not branches, so that the window's
/// order of values does not decide the time.
fn halve_backward<T: Real>(
    kind: PoolKind,
    plane: &[T],
    w: usize,
    y: &[T],
    delta: &[T],
    dplane: &mut [T],
) {
    let wo = w / 2;
    let (zero, inv) = (T::zero(), T::one() / T::of(4.0));
    let outputs = y.chunks_exact(wo).zip(delta.chunks_exact(wo));
    for (oi, (y_row, d_row)) in outputs.enumerate() {
        let (top, bottom) = (
            &plane[2 * oi * w..][..2 * wo],
            &plane[(2 * oi + 1) * w..][..2 * wo],
        );
        let (dtop, dbottom) = dplane[2 * oi * w..].split_at_mut(w);
        let (dtop, dbottom) = (&mut dtop[..2 * wo], &mut dbottom[..2 * wo]);
        for j in 0..wo {
            let (l, r) = (2 * j, 2 * j + 1);
            let (m, d) = (y_row[j], d_row[j]);
            let taken = match kind {
                PoolKind::Max => {
                    let t0 = top[l] == m;
                    let t1 = !t0 & (top[r] == m);
                    let t2 = !(t0 | t1) & (bottom[l] == m);
                    let t3 = !(t0 | t1 | t2) & (bottom[r] == m);
                    let g = zero + d;
                    [t0, t1, t2, t3].map(|t| if t { g } else { zero })
                }
                PoolKind::Avg => [zero + d * inv; 4],
            };
            (dtop[l], dtop[r], dbottom[l], dbottom[r]) = (taken[0], taken[1], taken[2], taken[3]);
        }
    }
}
