//! SGD with momentum and weight decay, Adam and AdamW, learning-rate schedules, and
//! Kolen-Pollack's shared update of `B` under each.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::Network;
use crate::params::WeightLayer;
use crate::rules::Rule;
use crate::tensor::{Real, Tensor};

/// Which optimiser trains the parameters (config key `optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with momentum (`momentum`, `nesterov`, `weight_decay`). The default.
    Sgd,
    /// Adam (`adam_beta1`, `adam_beta2`, `adam_eps`), `weight_decay` added to the gradient.
    Adam,
    /// AdamW: Adam with `weight_decay` decoupled from the gradient.
    Adamw,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
        }
    }
}

/// What updates the parameters after a backward pass.
pub trait Step {
    /// Updates every trained parameter of `net` at rate `lr` under `rule`: the batch-norm
    /// parameters (no decay), then every weight layer's `W`, bias and — under a rule with a
    /// shared update (Kolen-Pollack) — `B`.
    fn apply<T: Real>(&self, net: &mut Network<T>, rule: &dyn Rule<T>, lr: f64);
}

/// The optimiser a run trains with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    /// Tells Adam which step comes next (1 for the first; bias correction needs it).
    pub fn set_step(&mut self, t: u64) {
        if let Optimizer::Adam(a) = self {
            a.t = t;
        }
    }
}

impl Step for Optimizer {
    fn apply<T: Real>(&self, net: &mut Network<T>, rule: &dyn Rule<T>, lr: f64) {
        match self {
            Optimizer::Sgd(s) => s.apply(net, rule, lr),
            Optimizer::Adam(a) => a.apply(net, rule, lr),
        }
    }
}

impl Step for Sgd {
    fn apply<T: Real>(&self, net: &mut Network<T>, rule: &dyn Rule<T>, lr: f64) {
        let other = if self.decay_all {
            self.weight_decay
        } else {
            0.0
        };
        for p in net.params_mut() {
            self.update(&mut p.value, &p.grad, &mut p.momentum, lr, other);
        }
        self.step(&mut net.weight_layers_mut(), rule, lr);
    }
}

/// Adam (Kingma & Ba 2015) in PyTorch's formulation, and AdamW (Loshchilov & Hutter 2019):
///
/// ```text
/// d = g + λ_c p,   m ← β₁ m + (1 − β₁) d,   v ← β₂ v + (1 − β₂) d²,
/// p ← (1 − η λ_d) p − η m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),   v̂ = v / (1 − β₂ᵗ)
/// ```
///
/// Adam decays through the gradient (`λ_c = weight_decay`, `λ_d = 0`), AdamW decoupled
/// (`λ_c = 0`, `λ_d = weight_decay`). Under Kolen-Pollack `W` and `B` both get `grad_W` and
/// the rule's `λ` decoupled, each with its own moments: since both moments see the same
/// gradients from zero, `B` receives exactly `W`'s update term, and `W − B` shrinks by
/// `(1 − ηλ)` every step (paper eqs. 16–17 with Adam's step in place of `η grad_W`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `λ` for weights.
    pub weight_decay: f64,
    /// Also decay biases and batch norm's parameters by `weight_decay` (BioTorch decays every
    /// parameter); otherwise they are not decayed.
    pub decay_all: bool,
    /// AdamW: `weight_decay` is decoupled from the gradient.
    pub decoupled: bool,
    /// The step being taken, from 1.
    pub t: u64,
}

impl Step for Adam {
    fn apply<T: Real>(&self, net: &mut Network<T>, rule: &dyn Rule<T>, lr: f64) {
        // Adam decays through the gradient, AdamW decoupled: `(coupled, decoupled)`.
        let split = |lambda: f64| {
            if self.decoupled {
                (0.0, lambda)
            } else {
                (lambda, 0.0)
            }
        };
        let (oc, od) = split(if self.decay_all {
            self.weight_decay
        } else {
            0.0
        });
        for p in net.params_mut() {
            let (v, g) = (&mut p.value, &p.grad);
            self.update(v, g, &mut p.momentum, &mut p.second_moment, lr, oc, od);
        }
        let shared = rule.shared_update_decay(self.weight_decay);
        let (coupled, decoupled) = match shared {
            Some(lambda) => (0.0, lambda),
            None => split(self.weight_decay),
        };
        for (i, layer) in net.weight_layers_mut().iter_mut().enumerate() {
            let p = layer.params_mut();
            // `B`'s own gradient, only where `B` is stepped (never the first layer's).
            let own = (shared.is_some() && i > 0)
                .then(|| rule.feedback_gradient(p))
                .flatten();
            let (m, v) = (&mut p.momentum, &mut p.second_moment);
            self.update(
                &mut p.w, &p.grad_w, &mut m.w, &mut v.w, lr, coupled, decoupled,
            );
            // The first weight layer's `B` carries no error: left as it is.
            if let (Some(lambda), true) = (shared, i > 0) {
                let (b, g) = (&mut p.feedback, own.as_ref().unwrap_or(&p.grad_w));
                self.update(b, g, &mut m.feedback, &mut v.feedback, lr, 0.0, lambda);
            }
            if let (Some(b), Some(g)) = (p.bias.as_mut(), p.grad_bias.as_ref()) {
                self.update(b, g, &mut m.bias, &mut v.bias, lr, oc, od);
            }
        }
    }
}

impl Adam {
    /// Updates one tensor in a single fused pass; `m` and `v` start at zero.
    #[allow(clippy::too_many_arguments)]
    pub fn update<T: Real>(
        &self,
        p: &mut Tensor<T>,
        g: &Tensor<T>,
        m: &mut Option<Tensor<T>>,
        v: &mut Option<Tensor<T>>,
        lr: f64,
        coupled: f64,
        decoupled: f64,
    ) {
        assert_eq!(p.shape(), g.shape(), "parameter and gradient shapes");
        let t = self.t.max(1).min(i32::MAX as u64) as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let (b1, b2, eps) = (T::of(self.beta1), T::of(self.beta2), T::of(self.eps));
        let (one_b1, one_b2) = (T::of(1.0 - self.beta1), T::of(1.0 - self.beta2));
        let (keep, coupled) = (T::of(1.0 - lr * decoupled), T::of(coupled));
        let (step, root_c2) = (T::of(lr / c1), T::of(c2.sqrt()));
        let m = m.get_or_insert_with(|| Tensor::zeros(p.shape()));
        let v = v.get_or_insert_with(|| Tensor::zeros(p.shape()));
        const CHUNK: usize = 1 << 14;
        p.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(g.data().par_chunks(CHUNK))
            .zip(m.data_mut().par_chunks_mut(CHUNK))
            .zip(v.data_mut().par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                    let d = g + coupled * *p;
                    *m = b1 * *m + one_b1 * d;
                    *v = b2 * *v + one_b2 * d * d;
                    *p = keep * *p - step * *m / (v.sqrt() / root_c2 + eps);
                }
            });
    }
}

/// Stochastic gradient descent, PyTorch's formulation:
/// `d = g + λ p`, `v ← μ v + d` (`v₀ = d`), `p ← p − η (nesterov ? d + μ v : v)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f64,
    pub nesterov: bool,
    /// `λ` for weights.
    pub weight_decay: f64,
    /// Also decay biases and batch norm's parameters by `weight_decay` (BioTorch decays every
    /// parameter); otherwise they are not decayed.
    pub decay_all: bool,
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
        let shared = rule.shared_update_decay(self.weight_decay);
        for (i, layer) in layers.iter_mut().enumerate() {
            let p = layer.params_mut();
            let decay_w = shared.unwrap_or(self.weight_decay);
            self.update(&mut p.w, &p.grad_w, &mut p.momentum.w, lr, decay_w);
            // The first weight layer's `B` carries no error: left as it is.
            if let (Some(lambda), true) = (shared, i > 0) {
                let own = rule.feedback_gradient(p);
                let g = own.as_ref().unwrap_or(&p.grad_w);
                self.update(&mut p.feedback, g, &mut p.momentum.feedback, lr, lambda);
            }
            if let (Some(b), Some(g)) = (p.bias.as_mut(), p.grad_bias.as_ref()) {
                let other = if self.decay_all {
                    self.weight_decay
                } else {
                    0.0
                };
                self.update(b, g, &mut p.momentum.bias, lr, other);
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

    /// Adam and AdamW against the recurrence written out in f64, three steps, with decay.
    #[test]
    fn adam_matches_the_pytorch_recurrence() {
        for decoupled in [false, true] {
            let mut adam = Adam {
                beta1: 0.8,
                beta2: 0.9,
                eps: 1e-3,
                weight_decay: 0.1,
                decay_all: false,
                decoupled,
                t: 0,
            };
            let (lr, lambda) = (0.05, 0.1);
            let mut p = Tensor::from_vec(&[2], vec![1.0f64, -2.0]);
            let (mut m, mut v) = (None, None);
            let (mut want, mut mm, mut vv) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
            for (t, grads) in [[0.5, -0.25], [0.1, 0.3], [-0.4, 0.2]]
                .into_iter()
                .enumerate()
            {
                adam.t = t as u64 + 1;
                let (c, d) = if decoupled {
                    (0.0, lambda)
                } else {
                    (lambda, 0.0)
                };
                let g = Tensor::from_vec(&[2], grads.to_vec());
                adam.update(&mut p, &g, &mut m, &mut v, lr, c, d);
                for i in 0..2 {
                    let grad = grads[i] + c * want[i];
                    mm[i] = 0.8 * mm[i] + 0.2 * grad;
                    vv[i] = 0.9 * vv[i] + 0.1 * grad * grad;
                    let m_hat = mm[i] / (1.0 - 0.8f64.powi(t as i32 + 1));
                    let v_hat = vv[i] / (1.0 - 0.9f64.powi(t as i32 + 1));
                    want[i] = (1.0 - lr * d) * want[i] - lr * m_hat / (v_hat.sqrt() + 1e-3);
                }
                for (got, want) in p.data().iter().zip(want) {
                    assert!(
                        (got - want).abs() < 1e-12,
                        "decoupled {decoupled}, step {}: {got} vs {want}",
                        t + 1,
                    );
                }
            }
        }
    }

    /// SGD without momentum, with momentum and with Nesterov momentum against PyTorch's
    /// recurrence written out in f64, three steps, with decay.
    #[test]
    fn sgd_variants_match_the_pytorch_recurrence() {
        for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
            let sgd = Sgd {
                momentum,
                nesterov,
                weight_decay: 0.0,
                decay_all: false,
            };
            let (lr, lambda) = (0.05, 0.1);
            let mut p = Tensor::from_vec(&[2], vec![1.0f64, -2.0]);
            let mut buf = None;
            let (mut want, mut v) = ([1.0f64, -2.0], [0.0f64; 2]);
            for (t, grads) in [[0.5, -0.25], [0.1, 0.3], [-0.4, 0.2]]
                .into_iter()
                .enumerate()
            {
                let g = Tensor::from_vec(&[2], grads.to_vec());
                sgd.update(&mut p, &g, &mut buf, lr, lambda);
                for i in 0..2 {
                    let d = grads[i] + lambda * want[i];
                    v[i] = if t == 0 { d } else { momentum * v[i] + d };
                    want[i] -= lr * if nesterov { d + momentum * v[i] } else { v[i] };
                }
                for (got, want) in p.data().iter().zip(want) {
                    assert!(
                        (got - want).abs() < 1e-12,
                        "momentum {momentum}, nesterov {nesterov}, step {}: {got} vs {want}",
                        t + 1,
                    );
                }
            }
        }
    }

    /// Which decay reaches which tensor through `Step::apply`, from each tensor's first step
    /// written out (`p ← (1 − ηλ_d) p − η f(d)`, `d = g + λ_c p`; SGD: `f(d) = d`, Adam at
    /// `t = 1`: `f(d) = d / (|d| + ε)`): `W` gets the optimiser's weight decay (SGD and Adam
    /// through the gradient, AdamW decoupled) or, under a shared update (Kolen-Pollack), the
    /// rule's `λ` decoupled under Adam; so does every `B` but the first, with `W`'s gradient;
    /// biases get no decay; other rules leave `B` as it is.
    #[test]
    fn apply_gives_each_tensor_its_gradient_and_decay() {
        use crate::layers::ActivationKind;
        use crate::rules::{Backprop, KolenPollack};
        let (lr, wd, lambda, eps) = (0.05, 0.1, 0.3, 1e-3);
        let sgd = |decay_all| Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: wd,
            decay_all,
        };
        let adam = |decoupled, decay_all| Adam {
            beta1: 0.8,
            beta2: 0.9,
            eps,
            weight_decay: wd,
            decay_all,
            decoupled,
            t: 1,
        };
        let kp = KolenPollack {
            decay: Some(lambda),
        };
        let opts = [false, true].into_iter().flat_map(|all| {
            [
                Optimizer::Sgd(sgd(all)),
                Optimizer::Adam(adam(false, all)),
                Optimizer::Adam(adam(true, all)),
            ]
        });
        for opt in opts {
            for (rule, shared) in [(&Backprop as &dyn Rule<f64>, false), (&kp, true)] {
                let mut net = crate::models::mlp::<f64>(
                    4,
                    &[3, 3],
                    2,
                    ActivationKind::Tanh,
                    &mut crate::rng(7, 0),
                    &mut crate::rng(7, 1),
                );
                let mut rng = crate::rng(7, 2);
                let mut before = Vec::new();
                for l in net.weight_layers_mut() {
                    let p = l.params_mut();
                    p.grad_w = Tensor::randn(p.w.shape(), 1.0, &mut rng);
                    p.grad_bias = Some(Tensor::randn(&[p.w.shape()[0]], 1.0, &mut rng));
                    p.bias = Some(Tensor::randn(&[p.w.shape()[0]], 1.0, &mut rng));
                    before.push(p.clone());
                }
                opt.apply(&mut net, rule, lr);
                // First steps written out, with the decay through the gradient (`c`) or not (`d`).
                let step = |p: &Tensor<f64>, g: &Tensor<f64>, c: f64, d: f64| {
                    p.zip_map(g, |p, g| {
                        let grad = g + c * p;
                        let f = match opt {
                            Optimizer::Sgd(_) => grad,
                            Optimizer::Adam(_) => grad / (grad.abs() + eps),
                        };
                        (1.0 - lr * d) * p - lr * f
                    })
                };
                let (c, d) = match (opt, shared) {
                    (Optimizer::Sgd(_), true) => (lambda, 0.0),
                    (Optimizer::Sgd(_), false) => (wd, 0.0),
                    (Optimizer::Adam(_), true) => (0.0, lambda),
                    (Optimizer::Adam(a), false) if a.decoupled => (0.0, wd),
                    (Optimizer::Adam(_), false) => (wd, 0.0),
                };
                let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
                    a.zip_map(b, |a, b| a - b).norm() <= 1e-12 * b.norm()
                };
                for (i, (l, p0)) in net.weight_layers().iter().zip(&before).enumerate() {
                    let (p, what) = (l.params(), format!("{opt:?}, shared {shared}, layer {i}"));
                    assert!(close(&p.w, &step(&p0.w, &p0.grad_w, c, d)), "W: {what}");
                    let bias = p0.bias.as_ref().unwrap();
                    let grad_bias = p0.grad_bias.as_ref().unwrap();
                    // Biases decay only with `decay_all`, by `weight_decay` (KP's λ aside).
                    let (cb, db) = match opt {
                        Optimizer::Sgd(o) if o.decay_all => (wd, 0.0),
                        Optimizer::Adam(a) if a.decay_all && a.decoupled => (0.0, wd),
                        Optimizer::Adam(a) if a.decay_all => (wd, 0.0),
                        _ => (0.0, 0.0),
                    };
                    let want = step(bias, grad_bias, cb, db);
                    assert!(close(p.bias.as_ref().unwrap(), &want), "bias: {what}");
                    if shared && i > 0 {
                        let want = step(&p0.feedback, &p0.grad_w, c, d);
                        assert!(close(&p.feedback, &want), "B: {what}");
                    } else {
                        assert_eq!(p.feedback, p0.feedback, "B moved: {what}");
                    }
                }
            }
        }
    }

    /// Batch norm's scale and shift decay by `weight_decay` only with `decay_all` (with a zero
    /// gradient and no momentum history, one step scales them by `1 − ηλ`, AdamW's too).
    #[test]
    fn decay_all_reaches_batch_norm() {
        use crate::rules::Backprop;
        let (lr, wd) = (0.1, 0.5);
        for decay_all in [false, true] {
            let sgd = Optimizer::Sgd(Sgd {
                momentum: 0.0,
                nesterov: false,
                weight_decay: wd,
                decay_all,
            });
            let adamw = Optimizer::Adam(Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd,
                decay_all,
                decoupled: true,
                t: 1,
            });
            for opt in [sgd, adamw] {
                let mut net = crate::models::resnet_cifar::<f64>(
                    8,
                    [3, 8, 8],
                    10,
                    crate::layers::Shortcut::Projection,
                    &mut crate::rng(1, 0),
                    &mut crate::rng(1, 1),
                );
                for p in net.params_mut() {
                    p.grad = Tensor::zeros(p.value.shape());
                    p.value = p.value.map(|v| v + 0.5);
                }
                let before: Vec<Tensor<f64>> =
                    net.params_mut().iter().map(|p| p.value.clone()).collect();
                assert!(!before.is_empty());
                opt.apply(&mut net, &Backprop, lr);
                let keep = if decay_all { 1.0 - lr * wd } else { 1.0 };
                for (p, b) in net.params_mut().iter().zip(&before) {
                    let want = b.map(|v| v * keep);
                    let err = p.value.zip_map(&want, |a, b| a - b).norm();
                    // Plain SGD's decay through the gradient and AdamW's decoupled one agree
                    // here: Adam's own step on a zero gradient is zero.
                    assert!(err < 1e-12, "{opt:?}: {} off by {err:e}", p.name);
                }
            }
        }
    }

    /// `set_step` tells Adam the step it takes (its bias correction needs it); SGD has none.
    #[test]
    fn set_step_tells_adam_its_step() {
        let adam = Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decay_all: false,
            decoupled: false,
            t: 0,
        };
        let mut opt = Optimizer::Adam(adam);
        opt.set_step(5);
        assert_eq!(opt, Optimizer::Adam(Adam { t: 5, ..adam }));
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            decay_all: false,
        };
        let mut opt = Optimizer::Sgd(sgd);
        opt.set_step(5);
        assert_eq!(opt, Optimizer::Sgd(sgd));
    }

    /// A schedule's name is the value its config key takes.
    #[test]
    fn schedule_names_are_their_config_values() {
        for kind in [
            ScheduleKind::Constant,
            ScheduleKind::Multistep,
            ScheduleKind::Cosine,
        ] {
            let value = serde_json::to_value(kind).unwrap();
            assert_eq!(value, serde_json::Value::String(kind.name().into()));
        }
    }

    #[test]
    fn sgd_matches_the_pytorch_recurrence() {
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.1,
            decay_all: false,
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
