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

/// Inner dimensions up to which [`product`] beats the GEMM library, which packs both operands
/// first: `[16, K] · [K, 256]` products at 93 vs 54 GFLOPS on one core for `K` = 16, 89 vs 67
/// for 32, 81 vs 84 for 64 (where the library is kept).
pub(super) const PRODUCT_MAX_K: usize = 32;

/// `c[o·ldc + p] = Σ_{j<k} u[o·ldu + j] · v[j·ldv + p]` for `o < m`, `p < n` (every element
/// written): a product whose right operand is read straight from its rows, without packing.
/// Blocks of 4 rows × 24 columns keep twelve accumulators in registers; the last columns run
/// in blocks of 16, 8 and a masked one.
pub(super) fn product(
    c: &mut [f32],
    ldc: usize,
    (u, ldu): (&[f32], usize),
    (v, ldv): (&[f32], usize),
    (m, k, n): (usize, usize, usize),
) {
    assert!(available(), "product: needs AVX2 and FMA");
    assert!(ldc >= n && ldu >= k && ldv >= n, "product: row strides");
    let fits = |len: usize, rows: usize, ld: usize, cols: usize| {
        rows == 0 || cols == 0 || len >= (rows - 1) * ld + cols
    };
    assert!(
        fits(c.len(), m, ldc, n) && fits(u.len(), m, ldu, k) && fits(v.len(), k, ldv, n),
        "product: operand too short"
    );
    if n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    for o in (0..m).step_by(4) {
        let (c, u) = (&mut c[o * ldc..], &u[o * ldu..]);
        // SAFETY: AVX2 and FMA are present; rows `o..o + R` of `c` and `u` and all `k` rows of
        // `v` lie in the slices (asserted above), and each block stays within `n` columns.
        unsafe {
            if m - o >= 4 {
                x86::rows::<4>(c, ldc, (u, ldu), (v, ldv), k, n);
            } else {
                for r in 0..m - o {
                    x86::rows::<1>(&mut c[r * ldc..], ldc, (&u[r * ldu..], ldu), (v, ldv), k, n);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `R` rows of [`super::product`]: all `n` columns, in blocks of 24, 16, 8 and a masked
    /// remainder.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `c` and `u` hold `R` rows (`ldc`, `ldu` apart) of `n` and `k`
    /// values, `v` holds `k` rows of `n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows<const R: usize>(
        c: &mut [f32],
        ldc: usize,
        (u, ldu): (&[f32], usize),
        (v, ldv): (&[f32], usize),
        k: usize,
        n: usize,
    ) {
        let (c, u, v) = (c.as_mut_ptr(), u.as_ptr(), v.as_ptr());
        let all = _mm256_set1_epi32(-1);
        let mut p = 0;
        while n - p >= 24 {
            block::<R, 3, true>(c.add(p), ldc, (u, ldu), (v.add(p), ldv), k, all);
            p += 24;
        }
        if n - p >= 16 {
            block::<R, 2, true>(c.add(p), ldc, (u, ldu), (v.add(p), ldv), k, all);
            p += 16;
        } else if n - p >= 8 {
            block::<R, 1, true>(c.add(p), ldc, (u, ldu), (v.add(p), ldv), k, all);
            p += 8;
        }
        if n > p {
            // Lanes `0..n − p` of the last vector.
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((n - p) as i32), lanes);
            block::<R, 1, false>(c.add(p), ldc, (u, ldu), (v.add(p), ldv), k, mask);
        }
    }

    /// `c[r][8j + l] = Σ_i u[r][i] · v[i][8j + l]` for `r < R`, `j < V`: twelve (at most)
    /// accumulators, one broadcast of `u` per row and step of the sum. Unless `FULL`, only
    /// the lanes of `mask` of the last vector are read and written.
    ///
    /// # Safety
    /// As [`rows`], for the `8·V` columns from `c`, `v` (the last vector's masked lanes only).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize, const V: usize, const FULL: bool>(
        c: *mut f32,
        ldc: usize,
        (u, ldu): (*const f32, usize),
        (v, ldv): (*const f32, usize),
        k: usize,
        mask: __m256i,
    ) {
        let load = |p: *const f32, j: usize| {
            if FULL || j + 1 < V {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, mask)
            }
        };
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for i in 0..k {
            let row = v.add(i * ldv);
            let vv: [__m256; V] = std::array::from_fn(|j| load(row.add(8 * j), j));
            for (r, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*u.add(r * ldu + i));
                for (a, &x) in acc.iter_mut().zip(&vv) {
                    *a = _mm256_fmadd_ps(b, x, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &a) in acc.iter().enumerate() {
                let p = c.add(r * ldc + 8 * j);
                if FULL || j + 1 < V {
                    _mm256_storeu_ps(p, a);
                } else {
                    _mm256_maskstore_ps(p, mask, a);
                }
            }
        }
    }

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
