//! 2-D convolution on the rule seam, by im2col + GEMM, with a loop-nest oracle beside it.

use rayon::prelude::*;

use super::{seam_backward, Backward, Layer, WeightLayer, WeightParams};
use crate::tensor::{matmul, ConvGeom, Real, Tensor};

/// Images per GEMM: each chunk's images sit side by side in one column matrix, so one GEMM
/// serves them all. Chunks run in parallel; weight-gradient partials are summed in chunk order,
/// so results do not depend on the thread count. Measured on ResNet-20, batch 128, 2 threads
/// (`nowt bench`, three interleaved runs): 1 image per chunk 817–847 ms/step, 4 images
/// 846–887 ms, 16 images 1029–1081 ms; per-image GEMMs win on this machine.
const CHUNK: usize = 1;

/// `y[n, o] = Σ_c W[o, c] ⋆ x[n, c] (+ b[o])` with `x: [N, C_in, H, W]`,
/// `W: [C_out, C_in, k, k]`, `y: [N, C_out, H_o, W_o]`, stride `s`, zero padding `p`.
///
/// Backward (DESIGN.md §3): `grad_W = Σ_n δ_n · col(x_n)ᵀ` under every rule, and
/// `δ_in = col2im(Mᵀ · δ_n)` with `M = rule.backward_matrix(..)` viewed as `[C_out, C_in·k·k]`.
#[derive(Clone, Debug)]
pub struct Conv2d<T> {
    pub p: WeightParams<T>,
    pub stride: usize,
    pub pad: usize,
    /// The input resolution `(H, W)` (the weight mirror drives the layer with noise of it).
    pub in_hw: (usize, usize),
}

impl<T: Real> Conv2d<T> {
    /// A `k × k` convolution for inputs of `in_hw`, `W ~ N(0, init_std²)`, independent `B`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
        in_hw: (usize, usize),
        init_std: f64,
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        Self {
            p: WeightParams::new(name, &[c_out, c_in, k, k], init_std, bias, rng_w, rng_b),
            stride,
            pad,
            in_hw,
        }
    }

    fn geom(&self, x: &Tensor<T>) -> ConvGeom {
        let s = x.shape();
        assert_eq!(
            s.len(),
            4,
            "{}: input must be [N, C, H, W], got {s:?}",
            self.p.name
        );
        assert_eq!(s[1], self.p.w.shape()[1], "{}: input channels", self.p.name);
        ConvGeom {
            c: s[1],
            h: s[2],
            w: s[3],
            k: self.p.w.shape()[2],
            stride: self.stride,
            pad: self.pad,
        }
    }

    /// The column matrix of `imgs` (consecutive `[C, H, W]` images), side by side:
    /// `[C·k·k, L·H_o·W_o]` (for 1×1 stride-1 kernels, the images channel-major).
    fn cols(g: &ConvGeom, imgs: &[T]) -> Tensor<T> {
        let (ho, wo) = g.out_hw();
        let in_len = g.c * g.h * g.w;
        let l = imgs.len() / in_len;
        if g.is_identity() {
            return channel_major(imgs, g.c, ho * wo);
        }
        let mut col = Tensor::zeros(&[g.col_rows(), l * ho * wo]);
        for (i, img) in imgs.chunks_exact(in_len).enumerate() {
            g.im2col_into(img, col.data_mut(), l * ho * wo, i * ho * wo);
        }
        col
    }

    /// `W` (or any tensor of its shape) applied to `x`: `[N, C_out, H_o, W_o]`, bias excluded.
    fn conv(&self, x: &Tensor<T>, w: &Tensor<T>) -> Tensor<T> {
        let g = self.geom(x);
        let (ho, wo) = g.out_hw();
        let (n, c_out) = (x.rows(), w.rows());
        let mut y = Tensor::zeros(&[n, c_out, ho, wo]);
        let in_len = g.c * g.h * g.w;
        y.data_mut()
            .par_chunks_mut(CHUNK * c_out * ho * wo)
            .zip(x.data().par_chunks(CHUNK * in_len))
            .for_each(|(out, imgs)| {
                let col = Self::cols(&g, imgs);
                // [C_out, C_in·k·k] · [C_in·k·k, L·H_o·W_o]
                let yc = matmul(w, false, &col, false);
                image_major(yc.data(), c_out, ho * wo, out);
            });
        y
    }
}

/// `[L, C, P]` (L images of C planes of P values) → `[C, L·P]`.
fn channel_major<T: Real>(imgs: &[T], c: usize, p: usize) -> Tensor<T> {
    let l = imgs.len() / (c * p);
    let mut out = vec![T::zero(); imgs.len()];
    for (i, img) in imgs.chunks_exact(c * p).enumerate() {
        for (ch, plane) in img.chunks_exact(p).enumerate() {
            out[(ch * l + i) * p..(ch * l + i + 1) * p].copy_from_slice(plane);
        }
    }
    Tensor::from_vec(&[c, l * p], out)
}

/// The inverse of [`channel_major`]: `[C, L·P]` → `[L, C, P]` into `out`.
fn image_major<T: Real>(cm: &[T], c: usize, p: usize, out: &mut [T]) {
    let l = cm.len() / (c * p);
    for (i, img) in out.chunks_exact_mut(c * p).enumerate() {
        for (ch, plane) in img.chunks_exact_mut(p).enumerate() {
            plane.copy_from_slice(&cm[(ch * l + i) * p..(ch * l + i + 1) * p]);
        }
    }
}

impl<T: Real> Layer<T> for Conv2d<T> {
    fn name(&self) -> &str {
        &self.p.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        self.in_hw = (x.shape()[2], x.shape()[3]);
        let mut y = self.conv(x, &self.p.w);
        if let Some(b) = &self.p.bias {
            let hw = y.shape()[2] * y.shape()[3];
            let c_out = b.len();
            for (i, v) in y.data_mut().iter_mut().enumerate() {
                *v += b.data()[(i / hw) % c_out];
            }
        }
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
        if let Some(b) = &self.p.bias {
            let (c_out, hw) = (b.len(), delta.shape()[2] * delta.shape()[3]);
            let mut gb = vec![T::zero(); c_out];
            for (i, v) in delta.data().iter().enumerate() {
                gb[(i / hw) % c_out] += *v;
            }
            self.p.grad_bias = Some(Tensor::from_vec(&[c_out], gb));
        }
        seam_backward(self, x, delta, ctx, need_delta_in, |layer, m| {
            let geom = layer.geom(x);
            let (ho, wo) = geom.out_hw();
            let c_out = m.rows();
            let in_len = geom.c * geom.h * geom.w;
            let mut dx = Tensor::zeros(x.shape());
            dx.data_mut()
                .par_chunks_mut(CHUNK * in_len)
                .zip(delta.data().par_chunks(CHUNK * c_out * ho * wo))
                .for_each(|(dxc, dc)| {
                    let l = dc.len() / (c_out * ho * wo);
                    // [C_out, C_in·k·k]ᵀ · [C_out, L·H_o·W_o] → [C_in·k·k, L·H_o·W_o]
                    let col = matmul(m, true, &channel_major(dc, c_out, ho * wo), false);
                    if geom.is_identity() {
                        image_major(col.data(), geom.c, ho * wo, dxc);
                    } else {
                        for (i, dxi) in dxc.chunks_exact_mut(in_len).enumerate() {
                            geom.col2im_from(col.data(), dxi, l * ho * wo, i * ho * wo);
                        }
                    }
                });
            dx
        })
    }

    fn collect_weights<'a>(&'a self, out: &mut Vec<&'a dyn WeightLayer<T>>) {
        out.push(self);
    }
    fn collect_weights_mut<'a>(&'a mut self, out: &mut Vec<&'a mut dyn WeightLayer<T>>) {
        out.push(self);
    }
}

impl<T: Real> WeightLayer<T> for Conv2d<T> {
    fn params(&self) -> &WeightParams<T> {
        &self.p
    }
    fn params_mut(&mut self) -> &mut WeightParams<T> {
        &mut self.p
    }
    fn linear(&self, x: &Tensor<T>) -> Tensor<T> {
        self.conv(x, &self.p.w)
    }
    fn weight_grad(
        &self,
        x: &Tensor<T>,
        delta: &Tensor<T>,
        out: &mut Tensor<T>,
        keep: T,
        scale: T,
    ) {
        let g = self.geom(x);
        let (ho, wo) = g.out_hw();
        let c_out = self.p.w.rows();
        let (in_len, out_len) = (g.c * g.h * g.w, c_out * ho * wo);
        // One partial per chunk of images, summed in chunk order.
        let partials: Vec<Tensor<T>> = x
            .data()
            .par_chunks(CHUNK * in_len)
            .zip(delta.data().par_chunks(CHUNK * out_len))
            .map(|(imgs, dc)| {
                let col = Self::cols(&g, imgs);
                // [C_out, L·H_o·W_o] · [C_in·k·k, L·H_o·W_o]ᵀ
                matmul(&channel_major(dc, c_out, ho * wo), false, &col, true)
            })
            .collect();
        if out.shape() != self.p.w.shape() {
            *out = Tensor::zeros(self.p.w.shape());
        }
        let mut sum = partials.into_iter().reduce(|mut a, b| {
            a.zip_apply(&b, |a, b| a + b);
            a
        });
        if let Some(s) = sum.as_mut() {
            s.reshape(self.p.w.shape());
            out.zip_apply(s, |o, g| {
                if keep == T::zero() {
                    scale * g
                } else {
                    keep * o + scale * g
                }
            });
        }
    }
    fn input_shape(&self, n: usize) -> Vec<usize> {
        vec![n, self.p.w.shape()[1], self.in_hw.0, self.in_hw.1]
    }
}

/// The loop-nest oracle: `y[n,o,i,j] = Σ_{c,a,b} W[o,c,a,b] · x[n,c,i·s+a−p, j·s+b−p]`.
pub fn conv2d_naive<T: Real>(x: &Tensor<T>, w: &Tensor<T>, stride: usize, pad: usize) -> Tensor<T> {
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (o, k) = (w.shape()[0], w.shape()[2]);
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (wd + 2 * pad - k) / stride + 1;
    let mut y = Tensor::zeros(&[n, o, ho, wo]);
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..ho {
                for j in 0..wo {
                    let mut s = 0f64;
                    for ci in 0..c {
                        for a in 0..k {
                            for b in 0..k {
                                let (iy, ix) = (
                                    (i * stride + a) as isize - pad as isize,
                                    (j * stride + b) as isize - pad as isize,
                                );
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    let xv = x.data()
                                        [((ni * c + ci) * h + iy as usize) * wd + ix as usize];
                                    s += w.data()[((oi * c + ci) * k + a) * k + b].f64() * xv.f64();
                                }
                            }
                        }
                    }
                    y.data_mut()[((ni * o + oi) * ho + i) * wo + j] = T::of(s);
                }
            }
        }
    }
    y
}
