//! 2-D convolution on the rule seam, by im2col + GEMM over bands of output rows (3×3 stride-1
//! "same" kernels by Winograd's F(2×2, 3×3), `winograd.rs`), with a loop-nest oracle beside it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::winograd;
use super::{seam_backward, Backward, Layer, WeightLayer, WeightParams};
use crate::params::combined_response;
use crate::tensor::{gemm_slice, gemm_slice_uninit, ConvGeom, Pooled, Real, Tensor, View};

/// Images whose weight-gradient terms are summed into one partial (the partials are then added
/// in order), so results do not depend on the thread count.
///
/// Images run in parallel, one task each with its own column buffer, and each image's GEMMs on
/// one thread: batching several images into one GEMM measured slower on ResNet-20, batch 128,
/// 2 threads (`nowt bench`, three interleaved runs: 1 image per GEMM 817–847 ms/step, 4 images
/// 846–887 ms, 16 images 1029–1081 ms).
const GROUP: usize = 8;

/// Tasks a batch is cut into at least, where it has the images (Winograd groups images into
/// one GEMM; a batch of 8 ImageNet images on 7×7 planes would otherwise be one task). Depends
/// on the batch only, so that results do not depend on the thread count.
const TASKS: usize = 8;

/// Output positions per column block: each image is convolved a band of output rows at a time,
/// so that its column matrix (`C·k·k` × band) stays in the core's L2 cache between im2col, the
/// GEMM's packing and the GEMM (a whole stage-1 ResNet-20 image's is 590 KB).
const BAND_POSITIONS: usize = 256;

/// The bands of output rows of one image, top to bottom.
fn bands(g: &ConvGeom) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (ho, wo) = g.out_hw();
    let step = (BAND_POSITIONS / wo.max(1)).max(1);
    (0..ho).step_by(step).map(move |r| r..(r + step).min(ho))
}

/// `y[n, o] = Σ_c W[o, c] ⋆ x[n, c] (+ b[o])` with `x: [N, C_in, H, W]`,
/// `W: [C_out, C_in, k, k]`, `y: [N, C_out, H_o, W_o]`, stride `s`, zero padding `p`.
///
/// Backward (DESIGN.md §3): `grad_W = Σ_n δ_n · col(x_n)ᵀ` under every rule, and
/// `δ_in = col2im(Mᵀ · δ_n)` with `M = rule.backward_matrix(..)` viewed as `[C_out, C_in·k·k]`
/// (for "same" stride-1 kernels on large planes, and 3×3 ones on any, the equal convolution of
/// `δ` with `M`'s flipped kernel). 3×3 stride-1 "same" kernels of up to 256 channels run the
/// forward product and that convolution by Winograd's F(2×2, 3×3), and on planes of ≥ 256
/// positions grad_W too (`grad_W[o, c] = Gᵀ (Σ A δ Aᵀ ⊙ Bᵀ x B) G`). Only which matrix `M` is
/// depends on the rule (and, for direct feedback alignment, which error `δ` is: the output
/// error tiled over the output positions, with `M = D: [classes, C_in, k, k]`).
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
        self.geom_of(x.shape())
    }

    /// The geometry of an input of shape `s`, `[N, C, H, W]`.
    fn geom_of(&self, s: &[usize]) -> ConvGeom {
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

    /// `W` (or any tensor of its shape) applied to `x`: `[N, C_out, H_o, W_o]`, bias excluded.
    fn conv(&self, x: &Tensor<T>, w: &Tensor<T>) -> Tensor<T> {
        conv_images(&self.geom(x), x, View::of(w, false))
    }
}

/// Convolves every image of `x` (geometry `g`) with the weights `wm: [C_out, C·k·k]`:
/// `[N, C_out, H_o, W_o]`, one image per task, band by band.
fn conv_images<T: Real>(g: &ConvGeom, x: &Tensor<T>, wm: View<T>) -> Tensor<T> {
    let (ho, wo) = g.out_hw();
    let (n, c_out, in_len) = (x.rows(), wm.rows, g.c * g.h * g.w);
    if winograd::applies(g, c_out) {
        let u = winograd::weights(wm, g.c);
        let per = winograd::group(g).min(n.div_ceil(TASKS));
        let fill = |s: &mut Pooled<winograd::Scratch<T>>, i: usize, out: &mut [MaybeUninit<T>]| {
            let imgs = out.len() / (c_out * ho * wo);
            let x = &x.data()[i * per * in_len..][..imgs * in_len];
            winograd::conv(g, &u, c_out, x, out, s);
        };
        // SAFETY: `winograd::conv` writes every output of its images.
        return unsafe {
            Tensor::build(
                &[n, c_out, ho, wo],
                per * c_out * ho * wo,
                Pooled::take,
                fill,
            )
        };
    }
    let fill = |col: &mut Pooled<Vec<T>>, i: usize, out: &mut [MaybeUninit<T>]| {
        let img = &x.data()[i * in_len..][..in_len];
        for band in bands(g) {
            let at = band.start * wo;
            // [C_out, C_in·k·k] · [C_in·k·k, band], into the band's output columns.
            let c = cols(g, img, col, band);
            gemm_slice_uninit(&mut out[at..], ho * wo, wm, c, T::one());
        }
    };
    // SAFETY: the bands cover every output row, each GEMM writes all `C_out` rows of its band.
    unsafe { Tensor::build(&[n, c_out, ho, wo], c_out * ho * wo, Pooled::take, fill) }
}

/// The column matrix `[C·k·k, |band|·W_o]` of output rows `band` of one image: columns of the
/// image itself for 1×1 stride-1 kernels, else written into `buf` by im2col.
fn cols<'a, T: Real>(
    g: &ConvGeom,
    img: &'a [T],
    buf: &'a mut Vec<T>,
    band: std::ops::Range<usize>,
) -> View<'a, T> {
    let (ho, wo) = g.out_hw();
    let width = band.len() * wo;
    if g.is_identity() {
        return View::new(img, g.c, ho * wo, false).columns(band.start * wo, width);
    }
    buf.resize(g.col_rows() * width, T::zero());
    g.im2col_rows(img, buf, band);
    View::new(&buf[..], g.col_rows(), width, false)
}

impl<T: Real> Layer<T> for Conv2d<T> {
    fn reads_output(&self) -> bool {
        false
    }
    fn name(&self) -> &str {
        &self.p.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        self.in_hw = (x.shape()[2], x.shape()[3]);
        let mut y = self.conv(x, &self.p.w);
        if let Some(b) = &self.p.bias {
            let hw = y.shape()[2] * y.shape()[3];
            add_bias(y.data_mut(), b.data(), hw);
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
            let gb = bias_grad(delta.data(), c_out, hw);
            self.p.grad_bias = Some(Tensor::from_vec(&[c_out], gb));
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

impl<T: Real> WeightLayer<T> for Conv2d<T> {
    fn params(&self) -> &WeightParams<T> {
        &self.p
    }
    fn params_mut(&mut self) -> &mut WeightParams<T> {
        &mut self.p
    }
    fn linear(&self, x: &Tensor<T>, m: &Tensor<T>) -> Tensor<T> {
        self.conv(x, m)
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
        let k_len = g.col_rows();
        if out.shape() != self.p.w.shape() {
            *out = Tensor::zeros(self.p.w.shape());
        }
        // `[C_out, C_in·k·k]`, summed over images in groups (partials added in group order).
        let grad: Option<Vec<T>> = if winograd_sums(&g, c_out) {
            let per = sum_group(&g, x.rows());
            x.data()
                .par_chunks(per * in_len)
                .zip(delta.data().par_chunks(per * out_len))
                .map_init(Pooled::take, |s, (imgs, ds)| {
                    winograd::weight_sums(&g, c_out, imgs, ds, s)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .reduce(add)
                .map(|sums| winograd::weight_grad(&sums, c_out, g.c))
        } else {
            // Each partial is grad_Wᵀ, `[C_in·k·k, C_out]`: with the long `H_o·W_o` axis
            // contiguous in both operands the GEMM runs ≈ 2× faster than `δ · colᵀ` on
            // ResNet-20's layers.
            let partials: Vec<Vec<T>> = x
                .data()
                .par_chunks(GROUP * in_len)
                .zip(delta.data().par_chunks(GROUP * out_len))
                .map_init(Pooled::<Vec<T>>::take, |col, (imgs, ds)| {
                    let mut acc = vec![T::zero(); k_len * c_out];
                    for (i, (img, d)) in imgs.chunks(in_len).zip(ds.chunks(out_len)).enumerate() {
                        for (b, band) in bands(&g).enumerate() {
                            let width = band.len() * wo;
                            let db =
                                View::new(d, c_out, ho * wo, false).columns(band.start * wo, width);
                            let db = View { t: true, ..db };
                            // [C_in·k·k, band] · [C_out, band]ᵀ
                            let keep = if i == 0 && b == 0 {
                                T::zero()
                            } else {
                                T::one()
                            };
                            gemm_slice(
                                &mut acc,
                                c_out,
                                keep,
                                cols(&g, img, col, band),
                                db,
                                T::one(),
                            );
                        }
                    }
                    acc
                })
                .collect();
            partials.into_iter().reduce(add).map(|t| {
                let mut w = vec![T::zero(); t.len()];
                for (j, row) in t.chunks_exact(c_out).enumerate() {
                    for (o, v) in row.iter().enumerate() {
                        w[o * k_len + j] = *v;
                    }
                }
                w
            })
        };
        if let Some(grad) = grad {
            store(out, &grad, keep, scale);
        }
    }
    /// By Winograd's method where [`weight_grad`](Self::weight_grad) sums by it and
    /// [`winograd::responds`] allows (even planes, one or two terms): the tiles of every
    /// `conv(x, m_k)` go straight into the sums ([`winograd::response_sums`]), bit for bit the
    /// separate passes.
    fn response_grad(
        &self,
        x: &Tensor<T>,
        terms: &[(T, &Tensor<T>)],
        out: &mut Tensor<T>,
        keep: T,
        scale: T,
    ) {
        let g = self.geom(x);
        let c_out = self.p.w.rows();
        if !(winograd_sums(&g, c_out) && winograd::responds(&g, terms.len())) || x.rows() == 0 {
            let r = combined_response(self, x, terms);
            return self.weight_grad(x, &r, out, keep, scale);
        }
        if out.shape() != self.p.w.shape() {
            *out = Tensor::zeros(self.p.w.shape());
        }
        // The terms' kernels one above the other, [K·C_out, C·9], transformed together.
        let stacked: Vec<T> = terms.iter().flat_map(|(_, m)| m.data()).copied().collect();
        let wm = View::new(&stacked, terms.len() * c_out, g.c * 9, false);
        let u = winograd::weights(wm, g.c);
        let weights: Vec<T> = terms.iter().map(|&(a, _)| a).collect();
        let in_len = g.c * g.h * g.w;
        let sums = x
            .data()
            .par_chunks(sum_group(&g, x.rows()) * in_len)
            .map_init(Pooled::take, |s, imgs| {
                winograd::response_sums(&g, &u, &weights, c_out, imgs, s)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .reduce(add)
            .expect("at least one image");
        store(out, &winograd::weight_grad(&sums, c_out, g.c), keep, scale);
    }
    /// Direct feedback alignment's `conv2d_input_grad(ē, M)` with `ē[n, k, i, j] = e[n, k]` at
    /// every output position, without `ē`: since `ē` does not vary over positions,
    ///
    /// ```text
    /// δ_in[n, c, y, x] = Σ_{a: reaches(a, y)} Σ_{b: reaches(b, x)} G[n, c, a, b],   G = e · M
    /// ```
    ///
    /// with `reaches(a, y)` when tap row `a` reads input row `y` at some output row (`y + p − a`
    /// a multiple of `s` in `[0, s·H_o)`). `G: [N, C_in·k·k]` is one small GEMM, the tap sums
    /// `k` additions per value along each axis: at most a forward convolution's memory and far
    /// less than its work, where the tiled form builds `[N, classes, H_o, W_o]` and convolves
    /// it with `classes` input channels. Equal to the tiled form to rounding (tested). With
    /// `spread` each position carries `e / (H_o·W_o)`.
    fn broadcast_input_error(
        &self,
        e: &Tensor<T>,
        m: &Tensor<T>,
        input_shape: &[usize],
        spread: bool,
    ) -> Tensor<T> {
        let geom = self.geom_of(input_shape);
        let (ho, wo) = geom.out_hw();
        let (c, h, w, k) = (geom.c, geom.h, geom.w, geom.k);
        // G = e · M with M read as [classes, C_in·k·k] in place (each position's share folded
        // into the product's scale under `spread`).
        let taps = c * k * k;
        let share = if spread { 1.0 / (ho * wo) as f64 } else { 1.0 };
        let mut g = vec![T::zero(); e.rows() * taps];
        let m_flat = View::new(m.data(), m.rows(), taps, false);
        gemm_slice(
            &mut g,
            taps,
            T::zero(),
            View::of(e, false),
            m_flat,
            T::of(share),
        );
        // The taps that reach each input row (column), per axis.
        let reach = |len: usize, outs: usize| -> Vec<Vec<usize>> {
            (0..len)
                .map(|y| {
                    (0..k)
                        .filter(|&a| {
                            (y + geom.pad)
                                .checked_sub(a)
                                .is_some_and(|t| t % geom.stride == 0 && t / geom.stride < outs)
                        })
                        .collect()
                })
                .collect()
        };
        let (rows, cols) = (reach(h, ho), reach(w, wo));
        let mut out = Tensor::zeros(input_shape);
        out.data_mut()
            .par_chunks_mut(h * w)
            .zip(g.par_chunks(k * k))
            .for_each(|(plane, taps)| {
                // Σ over the reaching columns first: `by_col[a][x]`, then over the rows.
                let by_col: Vec<T> = (0..k)
                    .flat_map(|a| {
                        cols.iter()
                            .map(move |bs| bs.iter().fold(T::zero(), |s, &b| s + taps[a * k + b]))
                    })
                    .collect();
                for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                    for &a in &rows[y] {
                        for (v, &t) in row.iter_mut().zip(&by_col[a * w..][..w]) {
                            *v += t;
                        }
                    }
                }
            });
        out
    }
    /// `δ_in = conv2d_input_grad(source, M)`: `source: [N, C_out', H_o, W_o]` through a kernel
    /// `M: [C_out', C_in, kh, kw]` (`C_out' = C_out`, or the classes under direct feedback
    /// alignment) back to the input's shape.
    fn input_error(&self, source: &Tensor<T>, m: &Tensor<T>, input_shape: &[usize]) -> Tensor<T> {
        let geom = self.geom_of(input_shape);
        let (ho, wo) = geom.out_hw();
        let c_out = m.rows();
        let in_len = geom.c * geom.h * geom.w;
        if geom.is_same()
            && !geom.is_identity()
            && (winograd::applies(&geom, c_out) || ho * wo >= BAND_POSITIONS)
        {
            // Stride 1, "same" padding: δ_in is δ convolved with M's taps flipped and its
            // channels swapped, `M'[c, o, a, b] = M[o, c, k−1−a, k−1−b]` — a forward
            // convolution (im2col of δ, a GEMM over C_out·k·k), with no col2im. Measured
            // (criterion `conv/…/backward_bp`, same session): 32×32 planes 9.3 → 7.5 ms for
            // δ_in; on 8×8 planes the GEMM is too narrow and col2im stays faster — unless
            // Winograd computes it (8×8: backward_bp 14.1 → 11.0 ms).
            let (k, c_in) = (geom.k, geom.c);
            let mut mf = Tensor::zeros(&[c_in, c_out * k * k]);
            // (Kernel by kernel: an index split by division per element was ≈ 4% of a
            // stage-3 backward, on one thread.)
            for (o, taps) in m.data().chunks_exact(k * k).enumerate() {
                let (o, c) = (o / c_in, o % c_in);
                let out = &mut mf.data_mut()[(c * c_out + o) * k * k..][..k * k];
                for (v, &t) in out.iter_mut().zip(taps.iter().rev()) {
                    *v = t;
                }
            }
            let g = ConvGeom { c: c_out, ..geom };
            return conv_images(&g, source, View::of(&mf, false));
        }
        let mt = View::of(m, true);
        let fill = |col: &mut Pooled<Vec<T>>, i: usize, dxi: &mut [MaybeUninit<T>]| {
            let d = View::new(&source.data()[i * c_out * ho * wo..], c_out, ho * wo, false);
            if geom.is_identity() {
                // [C_out, C_in]ᵀ · [C_out, H·W], straight into δ_in.
                gemm_slice_uninit(dxi, ho * wo, mt, d, T::one());
                return;
            }
            // Zeroed here, image by image on the task's thread (one zeroed tensor up front
            // was a serial pass over all of δ_in), then the bands added onto it.
            dxi.fill(MaybeUninit::new(T::zero()));
            // SAFETY: every element was just initialised.
            let dxi = unsafe { &mut *(dxi as *mut [MaybeUninit<T>] as *mut [T]) };
            for band in bands(&geom) {
                let width = band.len() * wo;
                // [C_out, C_in·k·k]ᵀ · [C_out, band] → [C_in·k·k, band], then col2im.
                col.resize(geom.col_rows() * width, T::zero());
                let db = d.columns(band.start * wo, width);
                gemm_slice(col, width, T::zero(), mt, db, T::one());
                geom.col2im_rows(col, dxi, band);
            }
        };
        // SAFETY: each image's δ_in is written whole: by the GEMM (1×1) or zeroed first.
        unsafe { Tensor::build(input_shape, in_len, Pooled::take, fill) }
    }
    fn input_shape(&self, n: usize) -> Vec<usize> {
        vec![n, self.p.w.shape()[1], self.in_hw.0, self.in_hw.1]
    }
    fn tap_reach(&self) -> Vec<usize> {
        let s = self.p.w.shape();
        ConvGeom {
            c: s[1],
            h: self.in_hw.0,
            w: self.in_hw.1,
            k: s[2],
            stride: self.stride,
            pad: self.pad,
        }
        .tap_reach()
    }
}

/// `y[n, o, i] += b[o]` for `y: [N, C_out, hw]`, plane by plane.
fn add_bias<T: Real>(y: &mut [T], b: &[T], hw: usize) {
    for (plane, &b) in y.chunks_exact_mut(hw.max(1)).zip(b.iter().cycle()) {
        plane.iter_mut().for_each(|v| *v += b);
    }
}

/// `∂b[o] = Σ_{n, i} δ[n, o, i]` for `δ: [N, C_out, hw]`, each channel's terms added one at a
/// time in memory order (image by image, position by position) — the channels side by side, so
/// that their sums are independent chains (one running sum per channel, as before: the same
/// result bit for bit).
fn bias_grad<T: Real>(delta: &[T], c_out: usize, hw: usize) -> Vec<T> {
    let mut gb = vec![T::zero(); c_out];
    for img in delta.chunks_exact((c_out * hw).max(1)) {
        for j in 0..hw {
            for (o, g) in gb.iter_mut().enumerate() {
                *g += img[o * hw + j];
            }
        }
    }
    gb
}

/// Whether the weight gradient of a convolution of geometry `g` to `c_out` channels sums by
/// Winograd's method: where it computes the convolution, on planes of ≥ [`BAND_POSITIONS`]
/// outputs (on smaller ones the GEMM is faster).
fn winograd_sums(g: &ConvGeom, c_out: usize) -> bool {
    let (ho, wo) = g.out_hw();
    winograd::applies(g, c_out) && ho * wo >= BAND_POSITIONS
}

/// Images per task of the weight gradient's Winograd sums, of a batch of `n`.
fn sum_group(g: &ConvGeom, n: usize) -> usize {
    winograd::group(g).max(GROUP).min(n.div_ceil(TASKS))
}

/// `a + b`, element by element: two partial sums added, in order.
fn add<T: Real>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
    a
}

/// `out ← keep · out + scale · grad` (`keep = 0`: overwritten, whatever `out` held).
fn store<T: Real>(out: &mut Tensor<T>, grad: &[T], keep: T, scale: T) {
    for (v, &g) in out.data_mut().iter_mut().zip(grad) {
        *v = if keep == T::zero() {
            scale * g
        } else {
            keep * *v + scale * g
        };
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
