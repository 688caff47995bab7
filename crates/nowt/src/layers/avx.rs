//! AVX2 + FMA kernels for `f32`, taken at run time where `T` is `f32` and the CPU has both
//! extensions; everywhere else (and for `f64`, the precision of the oracles) the portable
//! generic code beside each caller runs, and the tests hold the two to the same results.
//!
//! Only where the compiler's own vectorisation of the generic code measured far short: it keeps
//! array accumulators in memory and does not contract `a · b + c` into one instruction.

use std::any::TypeId;

use crate::tensor::Real;

/// `x` as `f32` values, where `T` is `f32` and AVX2 + FMA kernels can run.
pub(super) fn f32s<T: Real>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32`, so the slice is one of `f32` values already.
    (is_f32::<T>() && available())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

/// `x` as `f32` values, mutably (see [`f32s`]).
pub(super) fn f32s_mut<T: Real>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as in `f32s`; the borrow of `x` moves into the result.
    (is_f32::<T>() && available())
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) })
}

fn is_f32<T: Real>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// Whether this CPU runs AVX2 and FMA (checked once, then cached by the standard library).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `s[o·n + c] += Σ_{p<k} a[o·lda + p] · b[c·ldb + p]` for `o < m`, `c < n` — dot products of
/// rows that are both contiguous along the sum. Blocks of 4 × 2 rows keep eight accumulators
/// of eight lanes in registers (`vfmadd`), the lanes added at the end.
pub(super) fn dots_add(
    s: &mut [f32],
    (a, lda, m): (&[f32], usize, usize),
    (b, ldb, n): (&[f32], usize, usize),
    k: usize,
) {
    assert!(available(), "dots_add: needs AVX2 and FMA");
    assert_eq!(s.len(), m * n, "dots_add: output size");
    assert!(
        m == 0 || a.len() >= (m - 1) * lda + k,
        "dots_add: a too short"
    );
    assert!(
        n == 0 || b.len() >= (n - 1) * ldb + k,
        "dots_add: b too short"
    );
    #[cfg(target_arch = "x86_64")]
    for o0 in (0..m).step_by(4) {
        for c0 in (0..n).step_by(2) {
            let (a, b) = ((a, lda), (b, ldb));
            // SAFETY: AVX2 and FMA are present and the rows lie in `a` and `b` (asserted).
            unsafe {
                match ((m - o0).min(4), (n - c0).min(2)) {
                    (4, 2) => x86::dots::<4, 2>(s, n, a, b, (o0, c0), k),
                    (4, _) => x86::dots::<4, 1>(s, n, a, b, (o0, c0), k),
                    (r, 2) => {
                        (o0..o0 + r).for_each(|o| x86::dots::<1, 2>(s, n, a, b, (o, c0), k));
                    }
                    (r, _) => {
                        (o0..o0 + r).for_each(|o| x86::dots::<1, 1>(s, n, a, b, (o, c0), k));
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// One `R × C` block of [`super::dots_add`]: `s[o][c] += a_o · b_c` for rows `o0..o0 + R`
    /// of `a` and `c0..c0 + C` of `b` (rows `lda`, `ldb` apart, `k` values each).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `a` holds row `o0 + R − 1` and `b` row `c0 + C − 1`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots<const R: usize, const C: usize>(
        s: &mut [f32],
        ldc: usize,
        (a, lda): (&[f32], usize),
        (b, ldb): (&[f32], usize),
        (o0, c0): (usize, usize),
        k: usize,
    ) {
        let ra: [*const f32; R] = std::array::from_fn(|r| a[(o0 + r) * lda..][..k].as_ptr());
        let rb: [*const f32; C] = std::array::from_fn(|c| b[(c0 + c) * ldb..][..k].as_ptr());
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let full = k / 8 * 8;
        for p in (0..full).step_by(8) {
            // (`p + 8 ≤ k`, the length of every row.)
            let vb: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(rb[c].add(p)));
            for r in 0..R {
                let va = _mm256_loadu_ps(ra[r].add(p));
                for c in 0..C {
                    acc[r][c] = _mm256_fmadd_ps(va, vb[c], acc[r][c]);
                }
            }
        }
        for r in 0..R {
            for c in 0..C {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][c]);
                let mut sum: f32 = lanes.iter().sum();
                for p in full..k {
                    sum += *ra[r].add(p) * *rb[c].add(p);
                }
                s[(o0 + r) * ldc + c0 + c] += sum;
            }
        }
    }
}
