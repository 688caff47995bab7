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
//! that it should, and with which `λ`.

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
        doc: "λ for both W and B, replacing W's weight decay (default 1e-3; 0 switches the \
              mechanism off: W − B then never shrinks, the control)",
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
    pub decay: f64,
}

impl<T: Real> Rule<T> for KolenPollack {
    fn kind(&self) -> RuleKind {
        RuleKind::KolenPollack
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        Cow::Borrowed(&p.feedback)
    }
    fn shared_update_decay(&self) -> Option<f64> {
        Some(self.decay)
    }
}
