//! Kolen-Pollack, the paper's second mechanism (eqs. 16–17, in our storage convention where
//! `B` has `W`'s shape):
//!
//! ```text
//! ΔW = −η (grad_W + λ W)        ΔB = −η (grad_W + λ B)
//! ```
//!
//! Both matrices get the same gradient term and the same decay, so under plain SGD
//! `W_t − B_t = (1 − ηλ)^t (W₀ − B₀)`: `B` converges to `W` from signals local to each synapse.
//! The optimiser applies the update (with a momentum buffer of `B`'s own); this rule only says
//! that it should, and with which `λ`. By default `λ` is the run's `weight_decay`, so `W`
//! decays exactly as under every other rule and a comparison is fair; `rules.kp_decay` sets
//! another `λ` (for `W` too), and `0` is the control that switches the mechanism off.

use std::borrow::Cow;

use super::{Knob, Rule, RuleInfo, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::KolenPollack,
    name: "kolen-pollack",
    aliases: &["kp"],
    summary: "M = B, B gets W's update and the same decay (paper eqs. 16-17)",
    knobs: &[Knob {
        key: "kp_decay",
        flag: "kp-decay",
        doc: "λ for both W and B (default: the run's weight_decay, so W decays as under every \
              other rule; another value replaces W's decay too; 0 switches the mechanism off: \
              W − B then never shrinks, the control)",
    }],
    build: |cfg, _| {
        Box::new(KolenPollack {
            decay: cfg.kp_decay,
        })
    },
};

/// `M = B`; `B` follows `W`'s update with decay `λ` (`λ = 0` switches the mechanism off).
#[derive(Clone, Copy, Debug)]
pub struct KolenPollack {
    /// `λ` for `W` and `B`; `None`: the optimiser's weight decay.
    pub decay: Option<f64>,
}

impl<T: Real> Rule<T> for KolenPollack {
    fn kind(&self) -> RuleKind {
        RuleKind::KolenPollack
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn shared_update_decay(&self, weight_decay: f64) -> Option<f64> {
        Some(self.decay.unwrap_or(weight_decay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::rules::RuleKind;

    /// By default `W` (and `B`) decay by the run's `weight_decay`, as `W` does under every other
    /// rule; `rules.kp_decay` replaces it, 0 included (the control).
    #[test]
    fn decays_by_the_runs_weight_decay_unless_given_its_own() {
        let mut cfg = TrainConfig {
            rule: RuleKind::KolenPollack,
            weight_decay: 5e-4,
            ..TrainConfig::default()
        };
        assert_eq!(cfg.w_decay(), 5e-4);
        let backprop = TrainConfig {
            rule: RuleKind::Backprop,
            ..cfg.clone()
        };
        assert_eq!(backprop.w_decay(), 5e-4);
        for own in [0.0, 1e-3] {
            cfg.rules.kp_decay = Some(own);
            assert_eq!(cfg.w_decay(), own);
            let kp: &dyn Rule<f32> = &KolenPollack { decay: Some(own) };
            assert_eq!(kp.shared_update_decay(5e-4), Some(own));
        }
    }
}
