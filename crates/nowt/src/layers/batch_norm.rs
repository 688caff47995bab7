//! Batch normalisation (Ioffe & Szegedy 2015) over `[N, C]` (1d) or `[N, C, H, W]` (2d).
//! Not a weight layer: its backward is the ordinary local derivative under every rule.

use rayon::prelude::*;

use super::{Backward, Layer, Param};
use crate::tensor::{Real, Tensor};

/// `y = γ (x − μ_c) / √(σ²_c + ε) + β` per channel `c`, followed by a ReLU when `relu` is set
/// (the two in one pass each way: the ReLU's derivative `[y > 0]` is read off the output).
/// Training uses the batch statistics (over `N·H·W`) and updates running estimates
/// (`momentum` 0.1, unbiased variance, as PyTorch); evaluation uses the running estimates.
#[derive(Clone, Debug)]
pub struct BatchNorm<T> {
    pub name: String,
    pub gamma: Param<T>,
    pub beta: Param<T>,
    pub running_mean: Tensor<T>,
    pub running_var: Tensor<T>,
    pub eps: f64,
    pub momentum: f64,
    /// Rectify the output: `y = max(0, BN(x))`.
    pub relu: bool,
    /// From the last forward: `μ` and `1/√(σ² + ε)` per channel (backward recomputes `x̂`
    /// from its input rather than keeping a tensor of it), and whether it used batch stats.
    mean: Vec<T>,
    inv_std: Vec<T>,
    batch_stats: bool,
    /// The values per channel the last forward's statistics were taken over, `M = N·H·W`
    /// (summed over the ranks with `--sync-bn`).
    count: f64,
}

impl<T: Real> BatchNorm<T> {
    /// Batch norm followed by a ReLU, fused.
    pub fn with_relu(name: &str, channels: usize) -> Self {
        Self {
            relu: true,
            ..Self::new(name, channels)
        }
    }

    pub fn new(name: &str, channels: usize) -> Self {
        let ones = Tensor::from_vec(&[channels], vec![T::one(); channels]);
        Self {
            name: name.to_string(),
            gamma: Param::new(&format!("{name}.gamma"), ones.clone()),
            beta: Param::new(&format!("{name}.beta"), Tensor::zeros(&[channels])),
            running_mean: Tensor::zeros(&[channels]),
            running_var: ones,
            eps: 1e-5,
            momentum: 0.1,
            relu: false,
            mean: Vec::new(),
            inv_std: Vec::new(),
            batch_stats: false,
            count: 0.0,
        }
    }
    /// Backward (see `Layer::backward`), compiled once with and once without the ReLU.
    fn grads<const RELU: bool>(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        let (n, c, hw) = dims(delta);
        let m = T::of(self.count);
        let at = |p: usize| p * hw..(p + 1) * hw;
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        // The slices of plane `p`: δ, x, and what the ReLU's mask is read from (y; without a
        // ReLU δ itself, never read).
        let planes = |p: usize| {
            let d = &delta.data()[at(p)];
            (d, &x.data()[at(p)], if RELU { &y.data()[at(p)] } else { d })
        };
        // δ through the ReLU, if any: the error at the normalised value.
        let masked = |d: T, y: T| if RELU && y <= T::zero() { T::zero() } else { d };
        // Σδ and Σ δ x̂ of every plane, in memory order; then of every channel, sample by sample.
        let plane_sums = per_plane(n * c, hw, |p| {
            let (mu, is) = (mean[p % c], inv_std[p % c]);
            let (d, xv, yv) = planes(p);
            lane_sums([d, xv, yv], |[d, xv, yv]| {
                let d = masked(d, yv);
                [d, d * ((xv - mu) * is)]
            })
        });
        let sums: Vec<(T, T)> = per_channel(
            &plane_sums,
            c,
            (T::zero(), T::zero()),
            |(sd, sdx), &[a, b]| (sd + a, sdx + b),
        );
        // This rank's part of ∂β, ∂γ (the ranks' parts are summed with the other gradients).
        self.beta.grad = Tensor::from_vec(&[c], sums.iter().map(|s| s.0).collect());
        self.gamma.grad = Tensor::from_vec(&[c], sums.iter().map(|s| s.1).collect());
        if !need_delta_in {
            return None;
        }
        // With --sync-bn, δ_in needs the global batch's Σδ and Σ δ x̂.
        let sums: Vec<(T, T)> = if self.batch_stats && crate::dist::batch_norm_synced() {
            let mut global: Vec<f64> = sums.iter().flat_map(|s| [s.0.f64(), s.1.f64()]).collect();
            crate::dist::batch_norm_sum(&mut global);
            global
                .chunks_exact(2)
                .map(|s| (T::of(s[0]), T::of(s[1])))
                .collect()
        } else {
            sums
        };
        let (gamma, batch) = (self.gamma.value.data(), self.batch_stats);
        let fill = |_: &mut (), p: usize, out: &mut [std::mem::MaybeUninit<T>]| {
            let ch = p % c;
            let g = gamma[ch] * inv_std[ch];
            let (sd, sdx) = sums[ch];
            let (mu, is) = (mean[ch], inv_std[ch]);
            let (d, xv, yv) = planes(p);
            for (((o, &d), &xv), &yv) in out.iter_mut().zip(d).zip(xv).zip(yv) {
                let d = masked(d, yv);
                let xh = (xv - mu) * is;
                o.write(if batch {
                    g / m * (m * d - sd - xh * sdx)
                } else {
                    g * d
                });
            }
        };
        // SAFETY: each plane of `hw` errors is written from the `hw` values of its plane.
        let d_in = unsafe { Tensor::build(delta.shape(), hw, || (), fill) };
        Some(d_in)
    }
}

/// `Σ_j f(ins[0][j], …, ins[I−1][j])` over the inputs' common length for `K` sums at once, each
/// in eight interleaved partial sums (a fixed order the compiler can vectorise; a single running
/// sum cannot be reordered), added up lane by lane at the end. The inputs are read eight values
/// at a time through fixed-size arrays: indexing them inside `f` kept every bounds check and
/// left the loop scalar (≈ 12 % of a ResNet-20 backprop step, `perf annotate`).
fn lane_sums<T: Real, const I: usize, const K: usize>(
    ins: [&[T]; I],
    f: impl Fn([T; I]) -> [T; K],
) -> [T; K] {
    const L: usize = 8;
    let len = ins[0].len();
    assert!(ins.iter().all(|x| x.len() == len), "lane_sums: lengths");
    let mut acc = [[T::zero(); L]; K];
    let full = len / L * L;
    for i in (0..full).step_by(L) {
        let x: [[T; L]; I] = std::array::from_fn(|q| ins[q][i..i + L].try_into().unwrap());
        for l in 0..L {
            let v = f(std::array::from_fn(|q| x[q][l]));
            for (a, v) in acc.iter_mut().zip(v) {
                a[l] += v;
            }
        }
    }
    for (l, i) in (full..len).enumerate() {
        let v = f(std::array::from_fn(|q| ins[q][i]));
        for (a, v) in acc.iter_mut().zip(v) {
            a[l] += v;
        }
    }
    acc.map(|a| a.iter().copied().sum())
}

/// `f(p)` for each of `planes` planes of `hw` values (`p` = sample · C + channel), in memory
/// order and in parallel; each plane's value is computed on its own, so the result does not
/// depend on the thread count. (Summing a channel's planes straight through jumps `C·hw`
/// values from plane to plane, where the hardware prefetcher restarts: 2× slower.)
fn per_plane<R: Send>(planes: usize, hw: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let min = (4096 / hw.max(1)).max(1);
    (0..planes)
        .into_par_iter()
        .with_min_len(min)
        .map(&f)
        .collect()
}

/// Each of the `c` channels' plane values (`values[sample · C + channel]`, from [`per_plane`])
/// folded by `add` from `init`, sample by sample in order.
fn per_channel<V, A: Copy>(values: &[V], c: usize, init: A, add: impl Fn(A, &V) -> A) -> Vec<A> {
    (0..c)
        .map(|ch| values.iter().skip(ch).step_by(c).fold(init, &add))
        .collect()
}

/// `(N, C, positions per channel per sample)` of `[N, C, …]`.
fn dims<T: Real>(x: &Tensor<T>) -> (usize, usize, usize) {
    let s = x.shape();
    (s[0], s[1], s[2..].iter().product())
}

impl<T: Real> Layer<T> for BatchNorm<T> {
    /// With a fused ReLU the derivative is read off the output.
    fn reads_output(&self) -> bool {
        self.relu
    }
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        let (n, c, hw) = dims(x);
        let mut m = (n * hw) as f64;
        // K: each channel's first value, a shift near its mean.
        let k: Vec<T> = (0..c)
            .map(|ch| {
                let plane = x.data().get(ch * hw..(ch + 1) * hw);
                plane.and_then(|p| p.first()).copied().unwrap_or(T::zero())
            })
            .collect();
        // Per channel: sums of `x − K_c` and `(x − K_c)²` (shifted by a value near the mean, so
        // the difference of the two moments keeps its precision), plane by plane in memory
        // order (in parallel), then over the samples in order.
        let shifted_sums = |k: &[T]| -> Vec<(f64, f64)> {
            let planes = per_plane(n * c, hw, |p| {
                let (xs, k) = (&x.data()[p * hw..(p + 1) * hw], k[p % c]);
                lane_sums([xs], |[x]| {
                    let d = x - k;
                    [d, d * d]
                })
            });
            per_channel(&planes, c, (0f64, 0f64), |(s1, s2), [a, b]| {
                (s1 + a.f64(), s2 + b.f64())
            })
        };
        // Per channel: mean and variance.
        let stats: Vec<(f64, f64)> = if !train {
            let (mean, var) = (self.running_mean.data(), self.running_var.data());
            mean.iter()
                .zip(var)
                .map(|(m, v)| (m.f64(), v.f64()))
                .collect()
        } else if crate::dist::batch_norm_synced() {
            // --sync-bn, in two passes over every rank's share: the global mean, then the sums
            // shifted by it (a shift far from a channel's values would cost the variance its
            // precision where the channel barely varies).
            let mut sums: Vec<f64> = shifted_sums(&k)
                .iter()
                .zip(&k)
                .map(|(s, k)| s.0 + m * k.f64())
                .collect();
            sums.push(m);
            crate::dist::batch_norm_sum(&mut sums);
            m = sums[c];
            let mu: Vec<T> = sums[..c].iter().map(|&s| T::of(s / m)).collect();
            let mut sums: Vec<f64> = shifted_sums(&mu).iter().flat_map(|s| [s.0, s.1]).collect();
            crate::dist::batch_norm_sum(&mut sums);
            (0..c)
                .map(|ch| {
                    let shift = sums[2 * ch] / m;
                    (
                        mu[ch].f64() + shift,
                        (sums[2 * ch + 1] / m - shift * shift).max(0.0),
                    )
                })
                .collect()
        } else {
            let sums = shifted_sums(&k);
            sums.iter()
                .zip(&k)
                .map(|(&(s1, s2), k)| {
                    let shift = s1 / m;
                    (k.f64() + shift, (s2 / m - shift * shift).max(0.0))
                })
                .collect()
        };
        self.count = m;
        if train {
            let k = self.momentum;
            for (ch, &(mu, var)) in stats.iter().enumerate() {
                let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { var };
                self.running_mean.data_mut()[ch] =
                    T::of((1.0 - k) * self.running_mean.data()[ch].f64() + k * mu);
                self.running_var.data_mut()[ch] =
                    T::of((1.0 - k) * self.running_var.data()[ch].f64() + k * unbiased);
            }
        }
        let mean: Vec<T> = stats.iter().map(|s| T::of(s.0)).collect();
        let inv_std: Vec<T> = stats
            .iter()
            .map(|s| T::of(1.0 / (s.1 + self.eps).sqrt()))
            .collect();
        let (gamma, beta) = (self.gamma.value.data(), self.beta.value.data());
        let relu = self.relu;
        let fill = |_: &mut (), p: usize, yv: &mut [std::mem::MaybeUninit<T>]| {
            let ch = p % c;
            let (mu, is, g, b) = (mean[ch], inv_std[ch], gamma[ch], beta[ch]);
            let xs = &x.data()[p * hw..(p + 1) * hw];
            if relu {
                for (yv, &v) in yv.iter_mut().zip(xs) {
                    yv.write((g * ((v - mu) * is) + b).max(T::zero()));
                }
            } else {
                for (yv, &v) in yv.iter_mut().zip(xs) {
                    yv.write(g * ((v - mu) * is) + b);
                }
            }
        };
        // SAFETY: each plane of `hw` outputs is written from the `hw` inputs of its plane.
        let y = unsafe { Tensor::build(x.shape(), hw, || (), fill) };
        self.mean = mean;
        self.inv_std = inv_std;
        self.batch_stats = train;
        y
    }

    /// With batch statistics: `∂β = Σδ`, `∂γ = Σ δ x̂`,
    /// `δ_in = γ/(M σ) · (M δ − Σδ − x̂ Σ δ x̂)` over the `M = N·H·W` values of each channel;
    /// with running statistics the normalisation is a fixed affine map, `δ_in = γ δ / σ`.
    /// With the ReLU, `δ` is first masked by `[y > 0]` (on the fly, nothing stored).
    fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        if self.relu {
            assert_eq!(y.len(), delta.len(), "{}: needs its output", self.name);
            self.grads::<true>(x, y, delta, need_delta_in)
        } else {
            self.grads::<false>(x, y, delta, need_delta_in)
        }
    }

    fn collect_params<'a>(&'a self, out: &mut Vec<&'a Param<T>>) {
        out.push(&self.gamma);
        out.push(&self.beta);
    }
    fn collect_params_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Param<T>>) {
        out.push(&mut self.gamma);
        out.push(&mut self.beta);
    }
    fn collect_buffers<'a>(&'a self, out: &mut Vec<(String, &'a Tensor<T>)>) {
        out.push((format!("{}.running_mean", self.name), &self.running_mean));
        out.push((format!("{}.running_var", self.name), &self.running_var));
    }
    fn collect_buffers_mut<'a>(&'a mut self, out: &mut Vec<(String, &'a mut Tensor<T>)>) {
        out.push((
            format!("{}.running_mean", self.name),
            &mut self.running_mean,
        ));
        out.push((format!("{}.running_var", self.name), &mut self.running_var));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of channel `ch` of `x: [N, C, …]`, sample by sample, with their mean and
    /// biased variance.
    fn channel(x: &Tensor<f64>, ch: usize) -> (Vec<f64>, f64, f64) {
        let (n, c, hw) = dims(x);
        let at = |i: usize| (i * c + ch) * hw..(i * c + ch + 1) * hw;
        let values: Vec<f64> = (0..n).flat_map(|i| x.data()[at(i)].to_vec()).collect();
        let m = values.len() as f64;
        let mean = values.iter().sum::<f64>() / m;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
        (values, mean, var)
    }

    /// A training-mode forward moves the running statistics as PyTorch does (momentum 0.1, the
    /// batch variance made unbiased by `M/(M − 1)`); a channel of one value (`M = 1`) adds its
    /// biased variance, 0. An evaluation-mode forward leaves them where they were.
    #[test]
    fn running_statistics_follow_pytorch() {
        let (r0, v0) = ([0.3, -0.2, 0.5], [0.7, 1.3, 2.0]);
        for shape in [vec![2, 3, 2, 2], vec![1, 3]] {
            let mut bn = BatchNorm::<f64>::new("bn", 3);
            bn.running_mean = Tensor::from_vec(&[3], r0.to_vec());
            bn.running_var = Tensor::from_vec(&[3], v0.to_vec());
            let x = Tensor::randn(&shape, 2.0, &mut crate::rng(5, 0)).map(|v| v + 1.0);
            bn.forward(&x, false);
            assert_eq!(bn.running_mean.data(), r0, "{shape:?}: evaluation");
            assert_eq!(bn.running_var.data(), v0, "{shape:?}: evaluation");
            bn.forward(&x, true);
            for ch in 0..3 {
                let (values, mean, var) = channel(&x, ch);
                let m = values.len() as f64;
                let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { 0.0 };
                let got = (bn.running_mean.data()[ch], bn.running_var.data()[ch]);
                let want = (0.9 * r0[ch] + 0.1 * mean, 0.9 * v0[ch] + 0.1 * unbiased);
                assert!(
                    (got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12,
                    "{shape:?} channel {ch}: (mean, var) {got:?}, want {want:?}"
                );
            }
        }
    }

    /// `y = γ (x − μ) / √(σ² + ε) + β` with the batch's (biased) statistics in training and the
    /// running ones in evaluation, ε = 10⁻⁵ included (finite differences cannot see ε's sign:
    /// the backward formula holds for any constant under the root). Channels of small variance
    /// (10⁻⁴) make ε matter at 5 %.
    #[test]
    fn normalises_with_the_batch_or_running_statistics_and_epsilon() {
        let x = Tensor::randn(&[3, 2, 2, 2], 0.01, &mut crate::rng(7, 0)).map(|v| v + 0.5);
        let mut bn = BatchNorm::<f64>::new("bn", 2);
        bn.gamma.value = Tensor::from_vec(&[2], vec![1.5, -0.5]);
        bn.beta.value = Tensor::from_vec(&[2], vec![0.25, 2.0]);
        bn.running_mean = Tensor::from_vec(&[2], vec![0.4, 0.6]);
        bn.running_var = Tensor::from_vec(&[2], vec![2e-4, 5e-5]);
        for train in [true, false] {
            let y = bn.clone().forward(&x, train);
            for ch in 0..2 {
                let (xs, mean, var) = channel(&x, ch);
                let (mu, var) = if train {
                    (mean, var)
                } else {
                    (bn.running_mean.data()[ch], bn.running_var.data()[ch])
                };
                let (g, b) = (bn.gamma.value.data()[ch], bn.beta.value.data()[ch]);
                for (yv, xv) in channel(&y, ch).0.into_iter().zip(xs) {
                    let want = g * (xv - mu) / (var + 1e-5).sqrt() + b;
                    assert!(
                        (yv - want).abs() < 1e-9,
                        "train={train} channel {ch}: {yv}, want {want}"
                    );
                }
            }
        }
    }

    /// `with_relu` is the same normalisation followed by `max(0, ·)`.
    #[test]
    fn with_relu_rectifies_the_normalised_output() {
        let x = Tensor::randn(&[4, 3, 2, 2], 1.0, &mut crate::rng(6, 0));
        let plain = BatchNorm::<f64>::new("bn", 3).forward(&x, true);
        let fused = BatchNorm::<f64>::with_relu("bn", 3).forward(&x, true);
        assert!(plain.data().iter().any(|&v| v < 0.0));
        assert_eq!(fused.data(), plain.map(|v| v.max(0.0)).data());
    }
}
