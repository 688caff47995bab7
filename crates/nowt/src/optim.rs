//! SGD with momentum and weight decay, learning-rate schedules, and Kolen-Pollack's shared
//! update of `B`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::params::WeightLayer;
use crate::rules::Rule;
use crate::tensor::{Real, Tensor};

/// Stochastic gradient descent, PyTorch's formulation:
/// `d = g + λ p`, `v ← μ v + d` (`v₀ = d`), `p ← p − η (nesterov ? d + μ v : v)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f64,
    pub nesterov: bool,
    /// `λ` for weights. Biases are not decayed.
    pub weight_decay: f64,
}

impl Sgd {
    /// One step of every weight layer at learning rate `lr`.
    ///
    /// Under a rule with a shared update (Kolen-Pollack), `W` and `B` both get `grad_W` and
    /// the rule's decay `λ`, each with its own momentum buffer (DESIGN.md §4); `layers` run
    /// bottom to top, and the first one's `B`, which carries no error, is not updated.
    pub fn step<T: Real>(
        &self,
        layers: &mut [&mut dyn WeightLayer<T>],
        rule: &dyn Rule<T>,
        lr: f64,
    ) {
        let shared = rule.shared_update_decay();
        for (i, layer) in layers.iter_mut().enumerate() {
            let p = layer.params_mut();
            let decay_w = shared.unwrap_or(self.weight_decay);
            self.update(&mut p.w, &p.grad_w, &mut p.momentum.w, lr, decay_w);
            // The first weight layer's `B` carries no error: left as it is.
            if let (Some(lambda), true) = (shared, i > 0) {
                self.update(
                    &mut p.feedback,
                    &p.grad_w,
                    &mut p.momentum.feedback,
                    lr,
                    lambda,
                );
            }
            if let (Some(b), Some(g)) = (p.bias.as_mut(), p.grad_bias.as_ref()) {
                self.update(b, g, &mut p.momentum.bias, lr, 0.0);
            }
        }
    }

    /// Updates one tensor in a single fused pass.
    pub fn update<T: Real>(
        &self,
        p: &mut Tensor<T>,
        g: &Tensor<T>,
        buf: &mut Option<Tensor<T>>,
        lr: f64,
        decay: f64,
    ) {
        assert_eq!(p.shape(), g.shape(), "parameter and gradient shapes");
        let (lr, decay, mu) = (T::of(lr), T::of(decay), T::of(self.momentum));
        const CHUNK: usize = 1 << 14;
        if self.momentum == 0.0 {
            p.data_mut()
                .par_chunks_mut(CHUNK)
                .zip(g.data().par_chunks(CHUNK))
                .for_each(|(p, g)| {
                    for (p, &g) in p.iter_mut().zip(g) {
                        *p -= lr * (g + decay * *p);
                    }
                });
            return;
        }
        let first = buf.is_none();
        let v = buf.get_or_insert_with(|| Tensor::zeros(p.shape()));
        let nesterov = self.nesterov;
        // The branches are hoisted out of the element loops so that each loop vectorises.
        let kernel = |p: &mut [T], g: &[T], v: &mut [T]| {
            let items = p.iter_mut().zip(g).zip(v.iter_mut());
            match (first, nesterov) {
                (true, false) => items.for_each(|((p, &g), v)| {
                    let d = g + decay * *p;
                    *v = d;
                    *p -= lr * d;
                }),
                (false, false) => items.for_each(|((p, &g), v)| {
                    *v = mu * *v + (g + decay * *p);
                    *p -= lr * *v;
                }),
                (_, true) => items.for_each(|((p, &g), v)| {
                    let d = g + decay * *p;
                    *v = if first { d } else { mu * *v + d };
                    *p -= lr * (d + mu * *v);
                }),
            }
        };
        p.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(g.data().par_chunks(CHUNK))
            .zip(v.data_mut().par_chunks_mut(CHUNK))
            .for_each(|((p, g), v)| kernel(p, g, v));
    }
}

/// The shape of the learning-rate curve over training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// `η` throughout.
    Constant,
    /// `η · γ^k` after the k-th milestone epoch.
    Multistep,
    /// `η · (1 + cos(π t / T)) / 2` over the whole run.
    Cosine,
}

impl ScheduleKind {
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Multistep => "multistep",
            ScheduleKind::Cosine => "cosine",
        }
    }
}

/// A learning-rate schedule with an optional linear warm-up, evaluated per step.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f64,
    /// Epochs at which multistep multiplies by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// Epochs of linear warm-up from ~0 to the scheduled rate.
    pub warmup_epochs: f64,
    pub epochs: usize,
}

impl Schedule {
    /// The learning rate at `epoch` (0-based) after `step` of `steps` steps in it.
    pub fn lr(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let t = epoch as f64 + step as f64 / steps.max(1) as f64;
        let lr = match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Multistep => {
                self.base_lr
                    * self
                        .gamma
                        .powi(self.milestones.iter().filter(|&&m| epoch >= m).count() as i32)
            }
            ScheduleKind::Cosine => {
                self.base_lr
                    * 0.5
                    * (1.0 + (std::f64::consts::PI * t / self.epochs.max(1) as f64).cos())
            }
        };
        if t < self.warmup_epochs {
            lr * (t + 1.0 / steps.max(1) as f64).min(self.warmup_epochs) / self.warmup_epochs
        } else {
            lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind, warmup: f64) -> Schedule {
        Schedule {
            kind,
            base_lr: 0.1,
            milestones: vec![2, 4],
            gamma: 0.1,
            warmup_epochs: warmup,
            epochs: 10,
        }
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let c = sched(ScheduleKind::Constant, 0.0);
        assert_eq!(c.lr(7, 3, 10), 0.1);
        let m = sched(ScheduleKind::Multistep, 0.0);
        assert_eq!(m.lr(1, 9, 10), 0.1);
        assert!((m.lr(2, 0, 10) - 0.01).abs() < 1e-15);
        assert!((m.lr(5, 0, 10) - 0.001).abs() < 1e-15);
        let cos = sched(ScheduleKind::Cosine, 0.0);
        assert_eq!(cos.lr(0, 0, 10), 0.1);
        assert!((cos.lr(5, 0, 10) - 0.05).abs() < 1e-12);
        let w = sched(ScheduleKind::Constant, 2.0);
        assert!((w.lr(0, 0, 10) - 0.1 * 0.1 / 2.0).abs() < 1e-12);
        assert!((w.lr(1, 4, 10) - 0.1 * 1.5 / 2.0).abs() < 1e-12);
        assert_eq!(w.lr(2, 0, 10), 0.1);
    }

    #[test]
    fn sgd_matches_the_pytorch_recurrence() {
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.1,
        };
        let mut p = Tensor::from_vec(&[1], vec![1.0f64]);
        let g = Tensor::from_vec(&[1], vec![0.5f64]);
        let mut buf = None;
        sgd.update(&mut p, &g, &mut buf, 0.1, 0.1);
        // d = 0.5 + 0.1·1 = 0.6; v = 0.6; p = 1 − 0.06
        assert!((p.data()[0] - 0.94).abs() < 1e-15);
        sgd.update(&mut p, &g, &mut buf, 0.1, 0.1);
        // d = 0.5 + 0.094 = 0.594; v = 0.54 + 0.594 = 1.134; p = 0.94 − 0.1134
        assert!((p.data()[0] - (0.94 - 0.1134)).abs() < 1e-12);
    }
}
