//! The noise that drives the mirror family (weight mirror, information and activation
//! alignment) in mirror mode, drawn as fast as memory allows.
//!
//! A ResNet-20 mirror step draws about 23 million values. `rand_distr`'s ziggurat, one `u64` of
//! ChaCha8 per value, took ≈ 4.3 ns a value (12 % of a weight-mirror step); here each value
//! costs one `u32` of ChaCha8, produced a block at a time, and a branch-free transform the
//! compiler vectorises:
//!
//! ```text
//! Gaussian (Box–Muller):  z₁ = r cos θ,  z₂ = r sin θ,   r = √(−2 ln u₁),  θ = 2π u₂
//! uniform:                v = a (2u − 1)
//! ```
//!
//! with `u₁ = (k₁ + 1)/2²⁴ ∈ (0, 1]`, `u₂ = k₂/2²⁴` and `u = (k + ½)/2²⁴` from the top 24 bits
//! `k` of each `u32` (the uniform is symmetric about 0, so its mean is exactly 0). `ln`, `sin`
//! and `cos` are polynomials accurate to a few units in the last place of `f32`; the Gaussian's
//! tails end at `√(48 ln 2) ≈ 5.8σ`, as any 24-bit Box–Muller's do.
//!
//! As [`Tensor::randn`] does (through the same `Tensor::seeded_blocks`), one seed is taken from
//! the caller's generator and each block of [`SEED_BLOCK`](crate::tensor::SEED_BLOCK) values draws from its own ChaCha8
//! stream of that seed: blocks fill in parallel and the values do not depend on the thread count. (This is a different stream from
//! `Tensor::randn`'s: runs of the mirror family from before it drew other noise.)

use rand::Rng as _;

use crate::tensor::{Real, Tensor};

/// Entries drawn independently from `N(0, std²)` (Box–Muller on 24-bit uniforms).
pub fn gaussian<T: Real>(shape: &[usize], std: f64, rng: &mut crate::Rng) -> Tensor<T> {
    let std = std as f32;
    fill(shape, rng, |bits, out| {
        // The first half of the block takes r cos θ, the second r sin θ, of the same pairs.
        let half = out.len() / 2;
        let (cos, sin) = out.split_at_mut(half);
        let (u1, u2) = bits.split_at(half);
        for (((c, s), &a), &b) in cos.iter_mut().zip(sin.iter_mut()).zip(u1).zip(&u2[..half]) {
            let (zc, zs) = box_muller(a, b);
            *c = T::of((std * zc) as f64);
            *s = T::of((std * zs) as f64);
        }
        // An odd block's last value: r cos θ of one more pair.
        if out.len() % 2 == 1 {
            let last = bits.len() - 1;
            let (zc, _) = box_muller(bits[last - 1], bits[last]);
            out[out.len() - 1] = T::of((std * zc) as f64);
        }
    })
}

/// Entries drawn independently from `U(−a, a)` (variance `a²/3`; 2²⁴ levels, symmetric).
pub fn uniform<T: Real>(shape: &[usize], a: f64, rng: &mut crate::Rng) -> Tensor<T> {
    let a = a as f32;
    fill(shape, rng, |bits, out| {
        for (v, &k) in out.iter_mut().zip(bits) {
            *v = T::of((a * (2.0 * centred_unit(k) - 1.0)) as f64);
        }
    })
}

/// A tensor of `shape` whose blocks are each written by `transform(bits, block)` from `bits`,
/// 32-bit words of the block's own ChaCha8 stream: as many as the block has values, one more
/// for an odd block (so Box–Muller's last pair is whole).
fn fill<T: Real>(
    shape: &[usize],
    rng: &mut crate::Rng,
    transform: impl Fn(&[u32], &mut [T]) + Sync + Send,
) -> Tensor<T> {
    Tensor::seeded_blocks(shape, rng, Vec::new, |bits: &mut Vec<u32>, r, block| {
        bits.resize(block.len() + block.len() % 2, 0);
        r.fill(&mut bits[..]);
        transform(bits, block);
    })
}

/// `2⁻²⁴`: one step of a 24-bit uniform.
const STEP: f32 = 1.0 / (1u32 << 24) as f32;

/// `(k + ½)/2²⁴ ∈ (0, 1)` from the top 24 bits `k` of `bits`.
#[inline(always)]
fn centred_unit(bits: u32) -> f32 {
    ((bits >> 8) as f32 + 0.5) * STEP
}

/// `(r cos θ, r sin θ)`, `r = √(−2 ln u₁)` with `u₁ = (k₁ + 1)/2²⁴ ∈ (0, 1]`, `θ = 2π u₂` with
/// `u₂ = k₂/2²⁴ ∈ [0, 1)`: two independent standard normal values.
#[inline(always)]
fn box_muller(a: u32, b: u32) -> (f32, f32) {
    let u1 = ((a >> 8) + 1) as f32 * STEP;
    let r = (-2.0 * ln(u1)).sqrt();
    let (s, c) = sin_cos_turns(((b >> 8) as f32) * STEP);
    (r * c, r * s)
}

/// `ln x` for normal `x > 0` (Cephes' `logf`): `x = m 2ᵉ` with `m ∈ [√½, √2)`, then
/// `ln m = f − f²/2 + f³ P(f)`, `f = m − 1`, and `e ln 2` added in two parts.
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // m ∈ [½, 1), x = m 2ᵉ.
    let mut e = ((bits >> 23) as i32 - 126) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= if small { 1.0 } else { 0.0 };
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let p = [
        7.037_683_6e-2,
        -1.151_461_1e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_4e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ]
    .iter()
    .fold(0.0f32, |acc, &c| acc * f + c);
    let y = f * z * p - 2.121_944_4e-4 * e - 0.5 * z;
    f + y + 0.693_359_4 * e
}

/// `(sin 2πt, cos 2πt)` for `t ∈ [0, 1)`: `t` split into a quarter turn `q` and a rest
/// `x ∈ [−π/4, π/4]`, whose sine and cosine are their Taylor series to `x⁹` and `x⁸`
/// (truncation below 3·10⁻⁸), then turned by `q` quarters.
#[inline(always)]
fn sin_cos_turns(t: f32) -> (f32, f32) {
    let q = (4.0 * t + 0.5).floor();
    let x = (t - 0.25 * q) * std::f32::consts::TAU;
    let x2 = x * x;
    let s =
        x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 / 362_880.0))));
    let c = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 / 40_320.0)));
    // θ = q·π/2 + x: odd quarters swap sine and cosine; the signs follow the quadrant.
    let q = q as i32 & 3;
    let (s, c) = if q & 1 == 1 { (c, s) } else { (s, c) };
    let sin = if q >= 2 { -s } else { s };
    let cos = if q == 1 || q == 2 { -c } else { c };
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::SEED_BLOCK;

    /// `ln` against `f64`'s over the whole range it is used on (every `u₁ = k/2²⁴`, sampled), and
    /// beyond it.
    #[test]
    fn ln_is_accurate_to_a_few_ulps() {
        let mut worst = 0f64;
        let xs = (1..=1u32 << 24).step_by(97).map(|k| k as f32 * STEP);
        for x in xs.chain([1e-30, 0.5, 1.0, 2.0, 3.7, 1e6]) {
            let want = (x as f64).ln();
            let err = (ln(x) as f64 - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
        }
        assert!(worst < 3e-7, "worst error {worst:e}");
    }

    /// `sin 2πt` and `cos 2πt` against `f64`'s at every quarter and between.
    #[test]
    fn sine_and_cosine_of_a_turn_are_accurate() {
        let mut worst = 0f64;
        for k in (0..1u32 << 24)
            .step_by(61)
            .chain([0, 1 << 22, 1 << 23, 3 << 22])
        {
            let t = k as f32 * STEP;
            let (s, c) = sin_cos_turns(t);
            let a = t as f64 * std::f64::consts::TAU;
            worst = worst.max((s as f64 - a.sin()).abs().max((c as f64 - a.cos()).abs()));
        }
        assert!(worst < 3e-7, "worst error {worst:e}");
    }

    /// The share of `n` sorted draws at or below `x`, against the normal CDF: the largest gap
    /// (Kolmogorov–Smirnov's D).
    fn ks_normal(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let cdf = |x: f64| 0.5 * (1.0 + statrs::function::erf::erf(x / 2f64.sqrt()));
        v.iter().enumerate().fold(0f64, |d, (i, &x)| {
            let f = cdf(x);
            d.max((f - i as f64 / n).abs())
                .max(((i + 1) as f64 / n - f).abs())
        })
    }

    /// A million draws are N(0, σ²): KS distance to the normal CDF inside the 1 % critical value
    /// (1.63/√n), mean, variance and fourth moment (3σ⁴) within sampling error; the cos and sin
    /// halves are uncorrelated. An odd length fills its last value.
    #[test]
    fn gaussian_draws_are_normal() {
        let n = 1_000_001;
        let t: Tensor<f64> = gaussian(&[n], 2.0, &mut crate::rng(3, 0));
        let v = t.data();
        assert!(v.iter().all(|x| x.is_finite()) && v[n - 1] != 0.0);
        let m = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let m4 = v.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64;
        assert!(m.abs() < 4.0 * 2.0 / (n as f64).sqrt(), "mean {m}");
        assert!((var / 4.0 - 1.0).abs() < 0.01, "variance {var}");
        assert!(
            (m4 / (var * var) - 3.0).abs() < 0.05,
            "kurtosis {}",
            m4 / var / var
        );
        let d = ks_normal(v.iter().map(|x| x / 2.0).collect());
        assert!(d < 1.63 / (n as f64).sqrt(), "KS distance {d}");
        let h = SEED_BLOCK / 2;
        let r: f64 = (0..h).map(|i| v[i] * v[i + h]).sum::<f64>() / h as f64 / 4.0;
        assert!(r.abs() < 4.0 / (h as f64).sqrt(), "cos–sin correlation {r}");
    }

    /// Uniform draws fill (−a, a) with mean 0 and variance a²/3, and a KS distance to the
    /// uniform CDF inside the 1 % critical value; the 2²⁴ levels are symmetric about ½.
    #[test]
    fn uniform_draws_are_uniform() {
        assert_eq!(centred_unit(0) + centred_unit(u32::MAX), 1.0);
        assert_eq!(centred_unit(0), 0.5 * STEP);
        let n = 1_000_000;
        let t: Tensor<f64> = uniform(&[n], 3.0, &mut crate::rng(4, 0));
        let mut v = t.into_data();
        assert!(v.iter().all(|x| x.abs() < 3.0));
        let m = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!(m.abs() < 4.0 * 3.0 / (3.0 * n as f64).sqrt(), "mean {m}");
        assert!((var / 3.0 - 1.0).abs() < 0.01, "variance {var}");
        v.sort_by(f64::total_cmp);
        let d = v.iter().enumerate().fold(0f64, |d, (i, &x)| {
            d.max(((x + 3.0) / 6.0 - i as f64 / n as f64).abs())
        });
        assert!(d < 1.63 / (n as f64).sqrt(), "KS distance {d}");
    }

    /// The values depend on the seed only: the same on one thread as on four, different for
    /// another seed, and each block differs from the next.
    #[test]
    fn draws_do_not_depend_on_the_thread_count() {
        let draw = |threads: usize, seed: u64| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| gaussian::<f32>(&[3 * SEED_BLOCK + 5], 1.0, &mut crate::rng(seed, 0)))
        };
        let one = draw(1, 9);
        assert_eq!(one, draw(4, 9));
        assert_ne!(one, draw(1, 10));
        assert_ne!(
            one.data()[..SEED_BLOCK],
            one.data()[SEED_BLOCK..2 * SEED_BLOCK]
        );
    }
}
