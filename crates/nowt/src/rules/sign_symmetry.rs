//! Sign symmetry (Liao et al. 2016; Xiao et al. 2018): the feedback path knows only the signs of
//! the forward weights, `M = s · sign(W)`, recomputed from `W` every step; `B` is not used.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Knob, Rule, RuleInfo, RuleKind};
use crate::params::WeightParams;
use crate::tensor::{Real, Tensor};

pub const INFO: RuleInfo = RuleInfo {
    kind: RuleKind::SignSymmetry,
    name: "sign-symmetry",
    aliases: &["ss", "usf"],
    summary:
        "M = s·sign(W), recomputed each step (Liao et al. 2016, Xiao et al. 2018; BioTorch's uSF)",
    knobs: &[Knob {
        key: "ss_scale",
        flag: "ss-scale",
        doc: "s: init-std (W's init std) or mean-abs (mean |W|, every step) (default init-std)",
    }],
    build: |cfg, _| {
        Box::new(SignSymmetry {
            scale: cfg.ss_scale,
        })
    },
};

/// The magnitude `s` of the feedback entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignScale {
    /// The standard deviation the layer's `W` was initialised with (Xiao et al.). The default.
    InitStd,
    /// `mean |W|`, recomputed every step.
    MeanAbs,
}

/// `M = s · sign(W)` (with `sign 0 = 0`).
#[derive(Clone, Copy, Debug)]
pub struct SignSymmetry {
    pub scale: SignScale,
}

impl SignSymmetry {
    /// The scale `s` for a layer.
    pub fn scale_for<T: Real>(&self, p: &WeightParams<T>) -> T {
        match self.scale {
            SignScale::InitStd => T::of(p.init_std),
            SignScale::MeanAbs => {
                T::of(p.w.data().iter().map(|w| w.abs().f64()).sum::<f64>() / p.w.len() as f64)
            }
        }
    }
}

impl<T: Real> Rule<T> for SignSymmetry {
    fn kind(&self) -> RuleKind {
        RuleKind::SignSymmetry
    }
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>> {
        let s = self.scale_for(p);
        // Written as a difference of two selects (no branches) so that it vectorises.
        Cow::Owned(p.w.map(|w| {
            let pos = if w > T::zero() { s } else { T::zero() };
            let neg = if w < T::zero() { s } else { T::zero() };
            pos - neg
        }))
    }
}
