//! Batch normalisation (Ioffe & Szegedy 2015) over `[N, C]` (1d) or `[N, C, H, W]` (2d).
//! Not a weight layer: its backward is the ordinary local derivative under every rule.

use super::{Backward, Layer, Param};
use crate::tensor::{Real, Tensor};

/// `y = γ (x − μ_c) / √(σ²_c + ε) + β` per channel `c`. Training uses the batch statistics
/// (over `N·H·W`) and updates running estimates (`momentum` 0.1, unbiased variance, as
/// PyTorch); evaluation uses the running estimates.
#[derive(Clone, Debug)]
pub struct BatchNorm<T> {
    pub name: String,
    pub gamma: Param<T>,
    pub beta: Param<T>,
    pub running_mean: Tensor<T>,
    pub running_var: Tensor<T>,
    pub eps: f64,
    pub momentum: f64,
    /// From the last forward: `x̂`, `1/√(σ² + ε)` per channel, and whether it used batch stats.
    x_hat: Tensor<T>,
    inv_std: Vec<T>,
    batch_stats: bool,
}

impl<T: Real> BatchNorm<T> {
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
            x_hat: Tensor::default(),
            inv_std: Vec::new(),
            batch_stats: false,
        }
    }
}

/// `(N, C, positions per channel per sample)` of `[N, C, …]`.
fn dims<T: Real>(x: &Tensor<T>) -> (usize, usize, usize) {
    let s = x.shape();
    (s[0], s[1], s[2..].iter().product())
}

impl<T: Real> Layer<T> for BatchNorm<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        let (n, c, hw) = dims(x);
        let m = (n * hw) as f64;
        let at = |i: usize, ch: usize, j: usize| (i * c + ch) * hw + j;
        let (mut mean, mut inv_std) = (vec![T::zero(); c], vec![T::zero(); c]);
        for ch in 0..c {
            let (mu, var) = if train {
                let mut s = 0f64;
                for i in 0..n {
                    s += (0..hw).map(|j| x.data()[at(i, ch, j)].f64()).sum::<f64>();
                }
                let mu = s / m;
                let mut v = 0f64;
                for i in 0..n {
                    v += (0..hw)
                        .map(|j| (x.data()[at(i, ch, j)].f64() - mu).powi(2))
                        .sum::<f64>();
                }
                let var = v / m;
                let unbiased = if m > 1.0 { v / (m - 1.0) } else { var };
                let k = self.momentum;
                self.running_mean.data_mut()[ch] =
                    T::of((1.0 - k) * self.running_mean.data()[ch].f64() + k * mu);
                self.running_var.data_mut()[ch] =
                    T::of((1.0 - k) * self.running_var.data()[ch].f64() + k * unbiased);
                (mu, var)
            } else {
                (
                    self.running_mean.data()[ch].f64(),
                    self.running_var.data()[ch].f64(),
                )
            };
            mean[ch] = T::of(mu);
            inv_std[ch] = T::of(1.0 / (var + self.eps).sqrt());
        }
        let mut x_hat = x.clone();
        let mut y = x.clone();
        for (idx, (xh, yv)) in x_hat.data_mut().iter_mut().zip(y.data_mut()).enumerate() {
            let ch = (idx / hw) % c;
            *xh = (*xh - mean[ch]) * inv_std[ch];
            *yv = self.gamma.value.data()[ch] * *xh + self.beta.value.data()[ch];
        }
        self.x_hat = x_hat;
        self.inv_std = inv_std;
        self.batch_stats = train;
        y
    }

    /// With batch statistics: `∂β = Σδ`, `∂γ = Σ δ x̂`,
    /// `δ_in = γ/(M σ) · (M δ − Σδ − x̂ Σ δ x̂)` over the `M = N·H·W` values of each channel;
    /// with running statistics the normalisation is a fixed affine map, `δ_in = γ δ / σ`.
    fn backward(
        &mut self,
        _x: &Tensor<T>,
        _y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        let (_, c, hw) = dims(delta);
        let m = T::of((delta.rows() * hw) as f64);
        let (mut sum_d, mut sum_dx) = (vec![T::zero(); c], vec![T::zero(); c]);
        for (idx, (&d, &xh)) in delta.data().iter().zip(self.x_hat.data()).enumerate() {
            let ch = (idx / hw) % c;
            sum_d[ch] += d;
            sum_dx[ch] += d * xh;
        }
        self.beta.grad = Tensor::from_vec(&[c], sum_d.clone());
        self.gamma.grad = Tensor::from_vec(&[c], sum_dx.clone());
        if !need_delta_in {
            return None;
        }
        let mut d_in = delta.clone();
        for (idx, (d, &xh)) in d_in
            .data_mut()
            .iter_mut()
            .zip(self.x_hat.data())
            .enumerate()
        {
            let ch = (idx / hw) % c;
            let g = self.gamma.value.data()[ch] * self.inv_std[ch];
            *d = if self.batch_stats {
                g / m * (m * *d - sum_d[ch] - xh * sum_dx[ch])
            } else {
                g * *d
            };
        }
        Some(d_in)
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
