//! The array type: a dense row-major tensor, and the only place that does index arithmetic or
//! calls GEMM.
//!
//! Everything is generic over [`Real`] so that the same layer code runs in `f32` for training
//! and in `f64` for the finite-difference oracles (DESIGN.md §6).

use std::any::Any;
use std::cell::RefCell;
use std::fmt::Debug;
use std::iter::Sum;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// A floating-point element type: `f32` for training, `f64` for gradient checks.
pub trait Real:
    num_traits::Float
    + Default
    + Debug
    + Send
    + Sync
    + Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + 'static
{
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn of(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn f64(self) -> f64;
    /// One draw from `N(0, 1)` in this precision.
    fn standard_normal(rng: &mut crate::Rng) -> Self;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn standard_normal(rng: &mut crate::Rng) -> Self {
        StandardNormal.sample(rng)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn standard_normal(rng: &mut crate::Rng) -> Self {
        StandardNormal.sample(rng)
    }
}

/// Values per block of a seeded draw ([`Tensor::randn`], the mirror family's noise): each block
/// draws from its own stream.
pub(crate) const SEED_BLOCK: usize = 1 << 13;

/// Element-wise loops over at least this many elements are split across the rayon pool.
/// Chunks never share a reduction, so the result does not depend on the thread count.
const PAR_MIN: usize = 1 << 16;
/// Products with fewer multiply-adds than this run on one thread.
const GEMM_PAR_MIN: usize = 1 << 18;

/// A dense row-major tensor. Shapes follow DESIGN.md §2: `x: [N, in]`, `W: [out, in]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor<T = f32> {
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<T: Real> Tensor<T> {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![T::zero(); shape.iter().product()],
        }
    }

    /// A tensor of `shape` made in parallel without zeroing it first: `fill(state, i, chunk)`
    /// is given the `i`-th run of `chunk_len` elements, uninitialised, with a per-task `state`
    /// from `init` (scratch space). Zeroing a buffer that is then overwritten took ≈ 4% of a
    /// ResNet-20 step.
    ///
    /// # Safety
    /// `fill` must write every element of every chunk it is given.
    pub unsafe fn build<S>(
        shape: &[usize],
        chunk_len: usize,
        init: impl Fn() -> S + Sync + Send,
        fill: impl Fn(&mut S, usize, &mut [std::mem::MaybeUninit<T>]) + Sync + Send,
    ) -> Self {
        let n: usize = shape.iter().product();
        let mut data: Vec<T> = Vec::with_capacity(n);
        data.spare_capacity_mut()[..n]
            .par_chunks_mut(chunk_len.max(1))
            .enumerate()
            .for_each_init(init, |s, (i, c)| fill(s, i, c));
        // SAFETY: the caller's `fill` initialised all `n` elements.
        unsafe { data.set_len(n) };
        Self {
            shape: shape.to_vec(),
            data,
        }
    }

    /// Wraps `data` with `shape`. Panics if the element count differs (a programming error).
    pub fn from_vec(shape: &[usize], data: Vec<T>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} vs {} elements",
            data.len()
        );
        Self {
            shape: shape.to_vec(),
            data,
        }
    }

    /// Entries drawn independently from `N(0, std²)`.
    ///
    /// One seed is taken from `rng`; each block of the tensor then draws from its own ChaCha
    /// stream of that seed, so blocks fill in parallel and the values do not depend on the
    /// thread count.
    pub fn randn(shape: &[usize], std: f64, rng: &mut crate::Rng) -> Self {
        let std = T::of(std);
        Self::sample(shape, rng, move |r| T::standard_normal(r) * std)
    }

    /// Entries drawn independently from `U(−a, a)` (variance `a²/3`), in blocks as [`randn`].
    ///
    /// [`randn`]: Tensor::randn
    pub fn rand_uniform(shape: &[usize], a: f64, rng: &mut crate::Rng) -> Self {
        Self::sample(shape, rng, move |r| T::of(r.random_range(-a..a)))
    }

    fn sample(
        shape: &[usize],
        rng: &mut crate::Rng,
        draw: impl Fn(&mut crate::Rng) -> T + Sync,
    ) -> Self {
        Self::seeded_blocks(
            shape,
            rng,
            || (),
            |_, r, block| block.iter_mut().for_each(|v| *v = draw(r)),
        )
    }

    /// A tensor of `shape` filled block by block, [`SEED_BLOCK`] values at a time and in
    /// parallel, each block by `fill(scratch, its_rng, block)`: one seed is taken from `rng`
    /// and block `i` draws from stream `i` of it, so the values do not depend on the thread
    /// count. `init` makes a thread's scratch.
    pub(crate) fn seeded_blocks<S>(
        shape: &[usize],
        rng: &mut crate::Rng,
        init: impl Fn() -> S + Sync + Send,
        fill: impl Fn(&mut S, &mut crate::Rng, &mut [T]) + Sync + Send,
    ) -> Self {
        let seed: u64 = rng.random();
        let mut data = vec![T::zero(); shape.iter().product()];
        data.par_chunks_mut(SEED_BLOCK)
            .enumerate()
            .for_each_init(init, |s, (i, block)| {
                fill(s, &mut crate::rng(seed, i as u64), block)
            });
        Self {
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Changes the shape to another with the same element count.
    pub fn reshape(&mut self, shape: &[usize]) {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.data.len(),
            "reshape {:?} → {shape:?}",
            self.shape
        );
        self.shape = shape.to_vec();
    }

    /// The leading dimension (the batch, or `out` for a weight).
    pub fn rows(&self) -> usize {
        self.shape[0]
    }
    /// The product of all but the leading dimension.
    pub fn cols(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// Converts every element to another precision.
    pub fn cast<U: Real>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| U::of(v.f64())).collect(),
        }
    }

    /// A new tensor of `f(v)` for every element (one pass, no copy first).
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        let data = if self.data.len() >= PAR_MIN {
            self.data.par_iter().map(|&v| f(v)).collect()
        } else {
            self.data.iter().map(|&v| f(v)).collect()
        };
        Self {
            shape: self.shape.clone(),
            data,
        }
    }

    /// A new tensor of `f(v, o)` for every element and the matching element `o` of `other`.
    pub fn zip_map(&self, other: &Self, f: impl Fn(T, T) -> T + Sync) -> Self {
        assert_eq!(self.shape, other.shape, "zip_map shapes");
        let data = if self.data.len() >= PAR_MIN {
            self.data
                .par_iter()
                .zip(other.data.par_iter())
                .map(|(&a, &b)| f(a, b))
                .collect()
        } else {
            self.data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect()
        };
        Self {
            shape: self.shape.clone(),
            data,
        }
    }

    /// `v ← f(v)` for every element.
    pub fn apply(&mut self, f: impl Fn(T) -> T + Sync) {
        if self.data.len() >= PAR_MIN {
            self.data
                .par_chunks_mut(PAR_MIN / 4)
                .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
        } else {
            self.data.iter_mut().for_each(|v| *v = f(*v));
        }
    }

    /// `v ← f(v, o)` for every element and the matching element `o` of `other`.
    pub fn zip_apply(&mut self, other: &Self, f: impl Fn(T, T) -> T + Sync) {
        assert_eq!(self.shape, other.shape, "zip_apply shapes");
        if self.data.len() >= PAR_MIN {
            self.data
                .par_chunks_mut(PAR_MIN / 4)
                .zip(other.data.par_chunks(PAR_MIN / 4))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b)));
        } else {
            self.data
                .iter_mut()
                .zip(&other.data)
                .for_each(|(a, &b)| *a = f(*a, b));
        }
    }

    /// Sum over the leading dimension: `[N, C] → [C]` (the bias gradient `Σ_n δ_n`).
    pub fn sum_rows(&self) -> Self {
        let c = self.cols();
        let mut out = vec![T::zero(); c];
        for row in self.data.chunks_exact(c) {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        }
        Self::from_vec(&[c], out)
    }

    /// Euclidean norm, accumulated in `f64`.
    pub fn norm(&self) -> f64 {
        self.data
            .iter()
            .map(|v| v.f64() * v.f64())
            .sum::<f64>()
            .sqrt()
    }

    /// `true` if every element is finite.
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

/// A scratch value of type `S` taken from this thread's pool and given back when dropped: the
/// buffers that kernels resize (transformed tiles, column matrices) are allocated and zeroed
/// once per thread rather than once per task (fresh ones per task spent ≈ 3% of a ResNet-20
/// step in `memset`). Use it as the per-task state of rayon's `map_init`/`for_each_init`.
pub struct Pooled<S: 'static>(Option<Box<S>>);

thread_local! {
    static POOL: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

impl<S: Default + 'static> Pooled<S> {
    /// This thread's spare `S` last given back, or a new one if it has none.
    pub fn take() -> Self {
        let spare = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let i = pool.iter().rposition(|b| b.is::<S>())?;
            Some(pool.remove(i))
        });
        Self(Some(spare.map_or_else(Box::default, |b| {
            b.downcast().expect("the pool's S")
        })))
    }
}

impl<S: 'static> std::ops::Deref for Pooled<S> {
    type Target = S;
    fn deref(&self) -> &S {
        self.0.as_ref().expect("held until dropped")
    }
}

impl<S: 'static> std::ops::DerefMut for Pooled<S> {
    fn deref_mut(&mut self) -> &mut S {
        self.0.as_mut().expect("held until dropped")
    }
}

impl<S: 'static> Drop for Pooled<S> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            // (A thread being torn down has no pool left: the value is simply freed.)
            let _ = POOL.try_with(|pool| pool.borrow_mut().push(s));
        }
    }
}

/// The instruction sets this CPU's kernels run on, chosen at run time (one binary for every x86
/// CPU): the GEMM (the `gemm` crate, built with its `x86-v4` kernels) and nowt's own kernels
/// (Winograd products and sums, element-wise passes). Results are bit-identical per instruction
/// set; between them they differ by rounding.
pub fn instruction_sets() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let (avx512, avx2) = (
            is_x86_feature_detected!("avx512f"),
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        );
        let gemm = match (avx512, avx2) {
            (true, _) => "avx512f",
            (false, true) => "avx2+fma",
            _ => "scalar",
        };
        let own = if avx2 { "avx2+fma" } else { "scalar" };
        format!("gemm:{gemm},own:{own}")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "gemm:portable,own:scalar".to_string()
    }
}

/// `C = op(A) · op(B)` for 2-D views, where `op` transposes when its flag is set.
///
/// `a` is viewed as `[a.rows(), a.cols()]` and `b` likewise, so a `[C_out, C_in, k, k]` weight is
/// used as its `[C_out, C_in·k·k]` matrix without copying.
pub fn matmul<T: Real>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Tensor<T> {
    let m = if ta { a.cols() } else { a.rows() };
    let n = if tb { b.rows() } else { b.cols() };
    let mut c = Tensor::zeros(&[m, n]);
    gemm_into(&mut c, T::zero(), a, ta, b, tb, T::one());
    c
}

/// `C ← keep · C + scale · op(A) · op(B)`; with `keep = 0` the old `C` is not read at all.
///
/// `keep = 1` fuses a bias already in `C`; the weight mirror uses `keep = 1 − η_B λ_WM` to
/// decay `B` and add its update in the same pass.
pub fn gemm_into<T: Real>(
    c: &mut Tensor<T>,
    keep: T,
    a: &Tensor<T>,
    ta: bool,
    b: &Tensor<T>,
    tb: bool,
    scale: T,
) {
    let (a, b) = (View::of(a, ta), View::of(b, tb));
    let (m, n) = (a.op_rows(), b.op_cols());
    assert_eq!((c.rows(), c.cols()), (m, n), "matmul output shape");
    gemm_views(
        c.data.as_mut_ptr(),
        c.data.len(),
        n,
        keep,
        a,
        b,
        scale,
        true,
    );
}

/// A row-major `[rows, cols]` matrix in a slice whose rows start `ld` apart (`ld ≥ cols`: a
/// block of columns of a wider matrix), used as itself or (`t`) its transpose.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub t: bool,
}

impl<'a, T: Real> View<'a, T> {
    /// A tensor as its 2-D matrix (`[rows, cols]`), transposed if `t`.
    pub fn of(x: &'a Tensor<T>, t: bool) -> Self {
        Self::new(&x.data, x.rows(), x.cols(), t)
    }

    /// A dense `[rows, cols]` matrix at the start of `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, t: bool) -> Self {
        Self {
            data,
            rows,
            cols,
            ld: cols,
            t,
        }
    }

    /// Columns `start..start + cols` of this (untransposed) matrix.
    pub fn columns(self, start: usize, cols: usize) -> Self {
        assert!(start + cols <= self.cols, "column block out of range");
        Self {
            data: &self.data[start..],
            cols,
            ..self
        }
    }
}

impl<T> View<'_, T> {
    fn op_rows(&self) -> usize {
        if self.t {
            self.cols
        } else {
            self.rows
        }
    }
    fn op_cols(&self) -> usize {
        if self.t {
            self.rows
        } else {
            self.cols
        }
    }
    /// Strides of element `(i, p)` of the operator (`i·rs + p·cs`).
    fn strides(&self) -> (isize, isize) {
        if self.t {
            (1, self.ld as isize)
        } else {
            (self.ld as isize, 1)
        }
    }
    /// The slice length the view reaches into.
    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.ld + self.cols
        }
    }
}

/// [`gemm_into`] on slices: `c: [m, n]` row-major with rows `ldc` apart
/// `← keep · c + scale · op(A) · op(B)`, on one thread (for callers that already run many
/// GEMMs in parallel: nesting the GEMM's own threads measured 2× slower on ResNet-20's
/// per-image products).
pub fn gemm_slice<T: Real>(c: &mut [T], ldc: usize, keep: T, a: View<T>, b: View<T>, scale: T) {
    gemm_views(c.as_mut_ptr(), c.len(), ldc, keep, a, b, scale, false);
}

/// [`gemm_slice`] into uninitialised memory, `c ← scale · op(A) · op(B)` (every element of the
/// `[m, n]` block is written, none read).
pub fn gemm_slice_uninit<T: Real>(
    c: &mut [std::mem::MaybeUninit<T>],
    ldc: usize,
    a: View<T>,
    b: View<T>,
    scale: T,
) {
    gemm_views(
        c.as_mut_ptr().cast(),
        c.len(),
        ldc,
        T::zero(),
        a,
        b,
        scale,
        false,
    );
}

/// The checked GEMM behind the others: `c` points at `c_len` elements (read only if
/// `keep ≠ 0`), rows `ldc` apart.
#[allow(clippy::too_many_arguments)]
fn gemm_views<T: Real>(
    c: *mut T,
    c_len: usize,
    ldc: usize,
    keep: T,
    a: View<T>,
    b: View<T>,
    scale: T,
    parallel: bool,
) {
    let accumulate = keep != T::zero();
    let (m, k) = (a.op_rows(), a.op_cols());
    let (k2, n) = (b.op_rows(), b.op_cols());
    assert_eq!(
        k,
        k2,
        "matmul inner dimensions: [{}, {}]{} · [{}, {}]{}",
        a.rows,
        a.cols,
        if a.t { "ᵀ" } else { "" },
        b.rows,
        b.cols,
        if b.t { "ᵀ" } else { "" }
    );
    assert!(
        ldc >= n && (m == 0 || c_len >= (m - 1) * ldc + n),
        "matmul output size"
    );
    assert!(
        a.ld >= a.cols && b.ld >= b.cols,
        "row stride shorter than a row"
    );
    assert!(
        a.data.len() >= a.span() && b.data.len() >= b.span(),
        "view out of its slice"
    );
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    let par = if parallel && m * n * k >= GEMM_PAR_MIN && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: in bounds (checked above); read only when accumulating, as promised.
                unsafe {
                    let p = c.add(i * ldc + j);
                    p.write(if accumulate {
                        keep * p.read()
                    } else {
                        T::zero()
                    });
                }
            }
        }
        return;
    }
    // SAFETY: the strides above describe exactly the buffers of `a`, `b` and `c`, whose sizes
    // were checked against (m, k, n); `c` does not alias `a` or `b` (the callers hold it
    // mutably); gemm reads `c` only when `accumulate`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            keep,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// The test oracle for [`matmul`]: a plain triple loop, accumulated in `f64`.
pub fn matmul_naive<T: Real>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Tensor<T> {
    let at = |i: usize, p: usize| {
        if ta {
            a.data[p * a.cols() + i]
        } else {
            a.data[i * a.cols() + p]
        }
    };
    let bt = |p: usize, j: usize| {
        if tb {
            b.data[j * b.cols() + p]
        } else {
            b.data[p * b.cols() + j]
        }
    };
    let m = if ta { a.cols() } else { a.rows() };
    let k = if ta { a.rows() } else { a.cols() };
    let n = if tb { b.rows() } else { b.cols() };
    let mut c = Tensor::zeros(&[m, n]);
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| at(i, p).f64() * bt(p, j).f64()).sum();
            c.data[i * n + j] = T::of(s);
        }
    }
    c
}

/// `out[i] = x[i·s]` for every `i < out.len()`: for stride 2 eight at a time through
/// fixed-size arrays (the compiler emits vector shuffles; one by one it stays scalar).
fn gather<T: Real>(out: &mut [T], x: &[T], s: usize) {
    let full = if s == 2 {
        out.len().min(x.len() / 2) / 8 * 8
    } else {
        0
    };
    for (o, c) in out[..full].chunks_exact_mut(8).zip(x.chunks_exact(16)) {
        let c: &[T; 16] = c.try_into().expect("a block");
        o.copy_from_slice(&std::array::from_fn::<T, 8, _>(|i| c[2 * i]));
    }
    for (o, v) in out[full..].iter_mut().zip(x[full * s..].iter().step_by(s)) {
        *o = *v;
    }
}

/// `x[i·s] += v[i]` for every `i < v.len()` (the adjoint of [`gather`]), for stride 2 eight
/// at a time: sixteen values read, the even ones added to, all sixteen written back.
fn scatter_add<T: Real>(x: &mut [T], v: &[T], s: usize) {
    let full = if s == 2 {
        v.len().min(x.len() / 2) / 8 * 8
    } else {
        0
    };
    for (c, v) in x.chunks_exact_mut(16).zip(v[..full].chunks_exact(8)) {
        let mut b: [T; 16] = c.try_into().expect("a block");
        for i in 0..8 {
            b[2 * i] += v[i];
        }
        c.copy_from_slice(&b);
    }
    for (d, v) in x[full * s..].iter_mut().step_by(s).zip(&v[full..]) {
        *d += *v;
    }
}

/// The geometry of a 2-D convolution over one image: `C` input channels of `H × W`, a `k × k`
/// kernel, `stride`, zero `pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    /// Output height and width: `(H + 2p − k) / s + 1`.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
    /// Rows of the column matrix: `C·k·k`.
    pub fn col_rows(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Whether the column matrix is the image itself (1×1, stride 1, no padding).
    pub fn is_identity(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// For each kernel tap `(ki, kj)`, row-major, the number of output positions at which it
    /// reads the image rather than the zero padding: `r_y(ki) · r_x(kj)` with
    /// `r_y(ki) = #{oy < H_o : 0 ≤ oy·s + ki − p < H}` (all `H_o·W_o` without padding).
    pub fn tap_reach(&self) -> Vec<usize> {
        let (ho, wo) = self.out_hw();
        let reach = |ki: usize, outs: usize, len: usize| {
            (0..outs)
                .filter(|o| {
                    (o * self.stride + ki)
                        .checked_sub(self.pad)
                        .is_some_and(|i| i < len)
                })
                .count()
        };
        let mut r = Vec::with_capacity(self.k * self.k);
        for ki in 0..self.k {
            for kj in 0..self.k {
                r.push(reach(ki, ho, self.h) * reach(kj, wo, self.w));
            }
        }
        r
    }

    /// Whether the output has the input's size (stride 1, `2p + 1 = k`): then each row of the
    /// column matrix is the image shifted by one offset, and im2col/col2im move whole bands.
    pub fn is_same(&self) -> bool {
        self.stride == 1 && 2 * self.pad + 1 == self.k
    }

    /// For a "same" convolution: for each column-matrix row and the output rows `rows_out`,
    /// `f(row, shift, valid_rows, cols)` where output position `o` (row-major in the plane)
    /// reads input position `o + shift` when its output row is in `valid_rows` and its output
    /// column in `cols`, and padding otherwise.
    fn for_each_shift(
        &self,
        rows_out: &std::ops::Range<usize>,
        mut f: impl FnMut(usize, isize, std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let (h, w, p, k) = (self.h, self.w, self.pad, self.k);
        for row in 0..self.col_rows() {
            let (ki, kj) = ((row / k) % k, row % k);
            let c = row / (k * k);
            let shift =
                (c * h * w) as isize + (ki as isize - p as isize) * w as isize + kj as isize
                    - p as isize;
            let rows = rows_out.start.max(p.saturating_sub(ki))..rows_out.end.min(h + p - ki);
            let cols = p.saturating_sub(kj)..w.min(w + p - kj);
            f(row, shift, rows, cols);
        }
    }

    /// For each column-matrix row `(c, ki, kj)` and output position, the input element it
    /// reads, or `None` in the padding: `f(row, out_index, Option<in_index>)`.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, Option<usize>)) {
        let (ho, wo) = self.out_hw();
        for c in 0..self.c {
            for ki in 0..self.k {
                for kj in 0..self.k {
                    let row = (c * self.k + ki) * self.k + kj;
                    for oy in 0..ho {
                        let iy = (oy * self.stride + ki) as isize - self.pad as isize;
                        for ox in 0..wo {
                            let ix = (ox * self.stride + kj) as isize - self.pad as isize;
                            let inside = iy >= 0
                                && ix >= 0
                                && (iy as usize) < self.h
                                && (ix as usize) < self.w;
                            let src =
                                inside.then(|| (c * self.h + iy as usize) * self.w + ix as usize);
                            f(row, oy * wo + ox, src);
                        }
                    }
                }
            }
        }
    }

    /// `col[(c,ki,kj), (oy,ox)] = x[c, oy·s + ki − p, ox·s + kj − p]` (0 in the padding);
    /// `img: [C, H, W]`, `col: [C·k·k, Ho·Wo]`.
    pub fn im2col<T: Real>(&self, img: &[T], col: &mut [T]) {
        self.im2col_rows(img, col, 0..self.out_hw().0);
    }

    /// Whether every tap reads the image, one input column per output column: stride 1, no
    /// padding (LeNet's "valid" convolutions).
    fn is_valid_unit(&self) -> bool {
        self.stride == 1 && self.pad == 0
    }

    /// For a [valid, unit-stride](Self::is_valid_unit) convolution: for each column-matrix row
    /// `(c, ki, kj)` and output row `oy` in `rows_out`, `f(row, oy, src)` where output row `oy`
    /// of that row reads the `W_o` input values from `src` = `(c, oy + ki, kj)` on.
    fn for_each_line(
        &self,
        rows_out: &std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let k = self.k;
        for row in 0..self.col_rows() {
            let (c, ki, kj) = (row / (k * k), (row / k) % k, row % k);
            for oy in rows_out.clone() {
                f(row, oy, (c * self.h + oy + ki) * self.w + kj);
            }
        }
    }

    /// For each column-matrix row `(c, ki, kj)` and output row `oy` in `rows_out`: the output columns
    /// `[lo, hi)` whose input lies inside the image and the input index the first of them
    /// reads (consecutive outputs read every `stride`-th input), or `None` when the whole
    /// output row reads padding. `f(row, oy, Option<(lo, hi, src)>)`.
    fn for_each_run(
        &self,
        rows_out: std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, Option<(usize, usize, usize)>),
    ) {
        let wo = self.out_hw().1;
        let (s, p) = (self.stride, self.pad as isize);
        for row in 0..self.col_rows() {
            let (c, ki, kj) = (
                row / (self.k * self.k),
                (row / self.k) % self.k,
                row % self.k,
            );
            // Output columns whose input column lies inside the image: ox in [lo, hi), the
            // first with `ox·s + kj − p ≥ 0` and the first after it with `… ≥ W`.
            let first = |ox: usize| (ox * s + kj) as isize - p;
            let at_least = |v: isize| (v.max(0) as usize).div_ceil(s);
            let lo = at_least(p - kj as isize).min(wo);
            let hi = at_least(self.w as isize + p - kj as isize).clamp(lo, wo);
            for oy in rows_out.clone() {
                let iy = (oy * s + ki) as isize - p;
                let run = (iy >= 0 && iy < self.h as isize && lo < hi).then(|| {
                    let src = (c * self.h + iy as usize) * self.w + first(lo) as usize;
                    (lo, hi, src)
                });
                f(row, oy, run);
            }
        }
    }

    /// [`ConvGeom::im2col`] for output rows `rows_out` only: `col: [C·k·k, |rows_out|·W_o]`.
    pub fn im2col_rows<T: Real>(&self, img: &[T], col: &mut [T], rows_out: std::ops::Range<usize>) {
        let wo = self.out_hw().1;
        let (s, oy0) = (self.stride, rows_out.start);
        let ld = rows_out.len() * wo;
        if self.is_same() {
            // One copy per row of the band, then the padding zeroed.
            self.for_each_shift(&rows_out, |row, shift, rows, cols| {
                let line = &mut col[row * ld..][..ld];
                if rows.is_empty() {
                    line.fill(T::zero());
                    return;
                }
                let (a, b) = ((rows.start - oy0) * wo, (rows.end - oy0) * wo);
                line[..a].fill(T::zero());
                line[b..].fill(T::zero());
                let start = (rows.start * wo) as isize + shift;
                // The first and last positions may lie outside the image (they are padding).
                let (skip, end) = (
                    (-start).max(0) as usize,
                    (b - a).min((img.len() as isize - start) as usize),
                );
                line[a + skip..a + end].copy_from_slice(
                    &img[(start + skip as isize) as usize..(start + end as isize) as usize],
                );
                // Column by column down the band (a handful of values per row: calling memset
                // for each measured slower than the copy itself).
                for j in (0..cols.start).chain(cols.end..wo) {
                    for r in rows.clone() {
                        line[(r - oy0) * wo + j] = T::zero();
                    }
                }
            });
            return;
        }
        if self.is_valid_unit() {
            self.for_each_line(&rows_out, |row, oy, src| {
                let seg = &mut col[row * ld + (oy - oy0) * wo..][..wo];
                copy_short(seg, &img[src..][..wo]);
            });
            return;
        }
        self.for_each_run(rows_out, |row, oy, run| {
            let seg = &mut col[row * ld + (oy - oy0) * wo..][..wo];
            let Some((lo, hi, src)) = run else {
                seg.fill(T::zero());
                return;
            };
            seg[..lo].fill(T::zero());
            seg[hi..].fill(T::zero());
            if s == 1 {
                seg[lo..hi].copy_from_slice(&img[src..src + (hi - lo)]);
            } else {
                gather(&mut seg[lo..hi], &img[src..], s);
            }
        });
    }

    /// The loop-by-tap reference for [`ConvGeom::im2col`] (its test oracle).
    pub fn im2col_reference<T: Real>(&self, img: &[T], col: &mut [T]) {
        let n = self.out_hw().0 * self.out_hw().1;
        self.for_each_tap(|row, o, src| col[row * n + o] = src.map_or(T::zero(), |i| img[i]));
    }

    /// The adjoint of [`ConvGeom::im2col`]: adds every column entry back onto the pixel it was
    /// read from (`img` is accumulated into, not cleared).
    pub fn col2im<T: Real>(&self, col: &[T], img: &mut [T]) {
        self.col2im_rows(col, img, 0..self.out_hw().0);
    }

    /// [`ConvGeom::col2im`] from the columns of output rows `rows_out` only
    /// (`col: [C·k·k, |rows_out|·W_o]`), the adjoint of [`ConvGeom::im2col_rows`].
    pub fn col2im_rows<T: Real>(&self, col: &[T], img: &mut [T], rows_out: std::ops::Range<usize>) {
        let wo = self.out_hw().1;
        let (s, oy0) = (self.stride, rows_out.start);
        let ld = rows_out.len() * wo;
        if self.is_same() {
            // One pass per row of the band, skipping the columns that read padding.
            self.for_each_shift(&rows_out, |row, shift, rows, cols| {
                let line = &col[row * ld..][..ld];
                for r in rows {
                    let start = ((r * wo + cols.start) as isize + shift) as usize;
                    let seg = &line[(r - oy0) * wo + cols.start..(r - oy0) * wo + cols.end];
                    for (d, v) in img[start..start + seg.len()].iter_mut().zip(seg) {
                        *d += *v;
                    }
                }
            });
            return;
        }
        if self.is_valid_unit() {
            self.for_each_line(&rows_out, |row, oy, src| {
                let seg = &col[row * ld + (oy - oy0) * wo..][..wo];
                for (d, v) in img[src..][..wo].iter_mut().zip(seg) {
                    *d += *v;
                }
            });
            return;
        }
        self.for_each_run(rows_out, |row, oy, run| {
            let Some((lo, hi, src)) = run else { return };
            let seg = &col[row * ld + (oy - oy0) * wo..][..wo];
            if s == 1 {
                for (d, v) in img[src..src + (hi - lo)].iter_mut().zip(&seg[lo..hi]) {
                    *d += *v;
                }
            } else {
                scatter_add(&mut img[src..], &seg[lo..hi], s);
            }
        });
    }

    /// The loop-by-tap reference for [`ConvGeom::col2im`] (its test oracle).
    pub fn col2im_reference<T: Real>(&self, col: &[T], img: &mut [T]) {
        let n = self.out_hw().0 * self.out_hw().1;
        self.for_each_tap(|row, o, src| {
            if let Some(i) = src {
                img[i] += col[row * n + o];
            }
        });
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (a row of a few to a few dozen
/// values, where calling `memcpy` costs more than the copy): eight values at a time through
/// fixed-size arrays, the rest one by one.
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths");
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let v: [T; 8] = s.try_into().expect("eight values");
        d.copy_from_slice(&v);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn slow_cols(g: &ConvGeom, img: &[f64]) -> Vec<f64> {
        let mut c = vec![f64::NAN; g.col_rows() * g.out_hw().0 * g.out_hw().1];
        g.im2col_reference(img, &mut c);
        c
    }

    #[test]
    fn im2col_and_col2im_match_their_references() {
        let mut rng = crate::rng(3, 0);
        for (k, stride, pad, h, w) in [
            (3, 1, 1, 7, 6),
            (3, 2, 1, 7, 6),
            (1, 2, 0, 5, 5),
            (2, 2, 1, 5, 4),
            (3, 1, 0, 4, 4),
            (3, 3, 2, 5, 7),
            (5, 1, 2, 6, 5),
            (1, 1, 0, 3, 4),
            (3, 1, 1, 1, 1),
            // Stride-2 rows long enough for the eight-wide blocks (and their tails).
            (3, 2, 1, 5, 37),
            (1, 2, 0, 4, 34),
            // Valid, stride 1 (LeNet's): rows of ten (one block of eight and a tail), and a
            // kernel as large as the image (one output).
            (5, 1, 0, 6, 14),
            (5, 1, 0, 5, 5),
        ] {
            let g = ConvGeom {
                c: 2,
                h,
                w,
                k,
                stride,
                pad,
            };
            let img: Tensor<f64> = Tensor::randn(&[2, h, w], 1.0, &mut rng);
            let n = g.col_rows() * g.out_hw().0 * g.out_hw().1;
            let (mut fast, mut slow) = (vec![f64::NAN; n], vec![f64::NAN; n]);
            g.im2col(img.data(), &mut fast);
            g.im2col_reference(img.data(), &mut slow);
            assert_eq!(fast, slow, "k={k} s={stride} p={pad} {h}x{w}");
            // The adjoint, accumulating onto the same start.
            let col: Tensor<f64> = Tensor::randn(&[n], 1.0, &mut rng);
            let (mut fast, mut slow) = (img.data().to_vec(), img.data().to_vec());
            g.col2im(col.data(), &mut fast);
            g.col2im_reference(col.data(), &mut slow);
            assert_eq!(fast, slow, "col2im k={k} s={stride} p={pad} {h}x{w}");
            // By bands of output rows: the same columns, and the same sum.
            let (ho, wo) = g.out_hw();
            let full = slow_cols(&g, img.data());
            let mut acc = img.data().to_vec();
            for band in [0..1, 1..ho.min(3), ho.min(3)..ho] {
                let width = band.len() * wo;
                let mut part = vec![f64::NAN; g.col_rows() * width];
                g.im2col_rows(img.data(), &mut part, band.clone());
                for r in 0..g.col_rows() {
                    let want = &full[r * ho * wo + band.start * wo..][..width];
                    assert_eq!(
                        &part[r * width..][..width],
                        want,
                        "band {band:?} k={k} s={stride}"
                    );
                }
                let band_col: Vec<f64> = (0..g.col_rows())
                    .flat_map(|r| col.data()[r * ho * wo + band.start * wo..][..width].to_vec())
                    .collect();
                g.col2im_rows(&band_col, &mut acc, band);
            }
            for (a, b) in acc.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-12, "col2im by bands k={k} s={stride}");
            }
        }
    }

    /// A pooled buffer comes back to the next task on its thread with its allocation; one taken
    /// while another is held is a separate value.
    #[test]
    fn pooled_scratch_is_reused_per_thread() {
        std::thread::spawn(|| {
            let mut a = Pooled::<Vec<f32>>::take();
            a.resize(1000, 1.0);
            let at = a.as_ptr();
            let b = Pooled::<Vec<f32>>::take();
            assert_eq!(b.capacity(), 0, "a second value while the first is held");
            drop(b);
            drop(a);
            let c = Pooled::<Vec<f32>>::take();
            assert_eq!(
                (c.as_ptr(), c.len()),
                (at, 1000),
                "same allocation, contents kept"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn gemm_matches_naive_in_every_transpose() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for &(m, k, n) in &[(3, 5, 4), (70, 90, 80), (1, 7, 1)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let sa = if ta { [k, m] } else { [m, k] };
                    let sb = if tb { [n, k] } else { [k, n] };
                    let a: Tensor<f64> = Tensor::randn(&sa, 1.0, &mut rng);
                    let b: Tensor<f64> = Tensor::randn(&sb, 1.0, &mut rng);
                    let fast = matmul(&a, ta, &b, tb);
                    let slow = matmul_naive(&a, ta, &b, tb);
                    assert_eq!(fast.shape(), &[m, n]);
                    for (x, y) in fast.data().iter().zip(slow.data()) {
                        assert!(
                            (x - y).abs() < 1e-10,
                            "{m}x{k}x{n} ta={ta} tb={tb}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}
