//! Resizing 8-bit image planes exactly as Pillow's `Image.resize(size, BILINEAR)` does (what
//! torchvision's `Resize` runs on PIL images, and so BioTorch's 28×28 → 32×32 (Fashion-)MNIST):
//! a separable triangle filter whose support widens by the scale when shrinking (antialiasing),
//! coefficients normalised and rounded to 22-bit fixed point, each pass rounded back to 8 bits,
//! the horizontal pass first (Pillow's `ImagingResample`, `Resample.c`).

/// Pillow's fixed-point precision for 8-bit images: `32 − 8 − 2` bits.
const PRECISION_BITS: u32 = 22;

/// For each output position along an axis of `n_in` → `n_out`: the first input index and the
/// fixed-point weights of the inputs from there (Pillow's `precompute_coeffs` and
/// `normalize_coeffs_8bpc` for the bilinear filter, `support = 1`).
fn coefficients(n_in: usize, n_out: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let triangle = |x: f64| {
        let x = x.abs();
        if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    };
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; both bounds are clamped to the axis.
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(n_in as i64) as usize;
            let w: Vec<f64> = (lo..hi)
                .map(|x| triangle((x as f64 - centre + 0.5) / filterscale))
                .collect();
            let total: f64 = w.iter().sum();
            let one = (1u64 << PRECISION_BITS) as f64;
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    if k < 0.0 {
                        (-0.5 + k * one) as i64
                    } else {
                        (0.5 + k * one) as i64
                    }
                })
                .collect();
            (lo, fixed)
        })
        .collect()
}

/// `Σ pixel · weight` in fixed point, rounded and clipped to 8 bits.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One 8-bit plane of `h × w` resized to `ho × wo` (row-major in and out). An axis whose size
/// does not change is not resampled (as in Pillow).
pub fn bilinear_u8(plane: &[u8], (h, w): (usize, usize), (ho, wo): (usize, usize)) -> Vec<u8> {
    assert_eq!(plane.len(), h * w, "plane of {h}×{w}");
    let half = 1i64 << (PRECISION_BITS - 1);
    let horizontal: Vec<u8> = if wo == w {
        plane.to_vec()
    } else {
        let cx = coefficients(w, wo);
        let mut out = Vec::with_capacity(h * wo);
        for row in plane.chunks_exact(w) {
            for (lo, k) in &cx {
                let acc = k.iter().zip(&row[*lo..]).map(|(k, &p)| k * p as i64);
                out.push(clip8(half + acc.sum::<i64>()));
            }
        }
        out
    };
    if ho == h {
        return horizontal;
    }
    let cy = coefficients(h, ho);
    let mut out = Vec::with_capacity(ho * wo);
    for (lo, k) in &cy {
        for x in 0..wo {
            let acc: i64 = k
                .iter()
                .enumerate()
                .map(|(i, k)| k * horizontal[(lo + i) * wo + x] as i64)
                .sum();
            out.push(clip8(half + acc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against Pillow 11/12 `Image.resize((W, H), Image.BILINEAR)` on a random 5×4 8-bit image
    /// (`random.seed(1)`; `randrange(256)` per pixel), enlarged to 7×6 and shrunk to 3×2.
    #[test]
    fn matches_pillow_bilinear() {
        let px: [u8; 20] = [
            68, 32, 130, 60, 253, 230, 241, 194, 107, 48, 249, 14, 199, 221, 1, 228, 136, 117, 52,
            162,
        ];
        let up = bilinear_u8(&px, (4, 5), (6, 7));
        let want_up: [u8; 42] = [
            68, 47, 60, 130, 80, 143, 253, 149, 142, 144, 162, 106, 113, 151, 233, 216, 201, 195,
            146, 90, 40, 246, 135, 94, 198, 201, 119, 9, 239, 145, 99, 158, 143, 113, 82, 228, 175,
            131, 117, 71, 99, 162,
        ];
        assert_eq!(up, want_up);
        let down = bilinear_u8(&px, (4, 5), (2, 3));
        assert_eq!(down, [145, 142, 118, 178, 142, 100]);
        assert_eq!(bilinear_u8(&px, (4, 5), (4, 5)), px);
    }
}
