//! Learning rules: how error crosses a weight layer (DESIGN.md §3).
//!
//! A rule chooses the matrix `M` in `δ_in = δ_out · M` and says how the feedback weights `B`
//! change. It never touches the weight gradient, which every layer computes the same way.
//! [`RuleKind::ALL`] is the one list of rules; the CLI enumerates it.

mod backprop;
mod feedback_alignment;
mod kolen_pollack;
mod sign_symmetry;
mod weight_mirror;

pub use backprop::Backprop;
pub use feedback_alignment::FeedbackAlignment;
pub use kolen_pollack::KolenPollack;
pub use sign_symmetry::{SignScale, SignSymmetry};
pub use weight_mirror::{mirror_step, MirrorConfig, MirrorInit, WeightMirror};

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::params::{WeightLayer, WeightParams};
use crate::tensor::{Real, Tensor};
use crate::{Error, Result};

/// A learning rule. Implementations are small: one file each, citing their equation.
pub trait Rule<T: Real>: Send + Sync {
    fn kind(&self) -> RuleKind;

    /// `M`, the matrix that carries the error backwards: `δ_in = δ_out · M` (DESIGN.md §3).
    fn backward_matrix<'a>(&self, p: &'a WeightParams<T>) -> Cow<'a, Tensor<T>>;

    /// Called once per layer after `W` and `B ~ N(0, init_std²)` are drawn.
    fn init_feedback(&self, _p: &mut WeightParams<T>) {}

    /// `Some(λ)` when `B` receives `W`'s update term and the decay `λ`, which `W` then also
    /// uses (Kolen-Pollack, paper eqs. 16–17). The optimiser applies it with `B`'s own buffer.
    fn shared_update_decay(&self) -> Option<f64> {
        None
    }

    /// Work on `B` before the first training step (the weight mirror's warm-up).
    fn before_training(&self, _layers: &mut [&mut dyn WeightLayer<T>], _rng: &mut crate::Rng) {}

    /// Work on `B` after every training step (the weight mirror's mirror mode).
    fn after_step(&self, _layers: &mut [&mut dyn WeightLayer<T>], _rng: &mut crate::Rng) {}
}

/// The rules nowt implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    #[serde(alias = "bp")]
    Backprop,
    #[serde(alias = "fa")]
    FeedbackAlignment,
    #[serde(alias = "ss")]
    SignSymmetry,
    #[serde(alias = "wm")]
    WeightMirror,
    #[serde(alias = "kp")]
    KolenPollack,
}

impl RuleKind {
    /// Every rule, in the order the paper introduces them.
    pub const ALL: [RuleKind; 5] = [
        RuleKind::Backprop,
        RuleKind::FeedbackAlignment,
        RuleKind::SignSymmetry,
        RuleKind::WeightMirror,
        RuleKind::KolenPollack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Backprop => "backprop",
            RuleKind::FeedbackAlignment => "feedback-alignment",
            RuleKind::SignSymmetry => "sign-symmetry",
            RuleKind::WeightMirror => "weight-mirror",
            RuleKind::KolenPollack => "kolen-pollack",
        }
    }

    pub fn alias(self) -> &'static str {
        match self {
            RuleKind::Backprop => "bp",
            RuleKind::FeedbackAlignment => "fa",
            RuleKind::SignSymmetry => "ss",
            RuleKind::WeightMirror => "wm",
            RuleKind::KolenPollack => "kp",
        }
    }

    /// One line: what `M` is and how `B` changes.
    pub fn summary(self) -> &'static str {
        match self {
            RuleKind::Backprop => "M = W (weight transport; the reference)",
            RuleKind::FeedbackAlignment => {
                "M = B, B fixed at its random initialisation (Lillicrap et al. 2016)"
            }
            RuleKind::SignSymmetry => {
                "M = s·sign(W), recomputed each step (Liao et al. 2016, Xiao et al. 2018)"
            }
            RuleKind::WeightMirror => "M = B, B learns W from noise in mirror mode (paper eq. 7)",
            RuleKind::KolenPollack => {
                "M = B, B gets W's update and the same decay (paper eqs. 16-17)"
            }
        }
    }

    /// Parses a full name or an alias.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name || k.alias() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "rule",
                name: name.to_string(),
                choices: Self::ALL
                    .iter()
                    .map(|k| format!("{} ({})", k.name(), k.alias()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Every rule's knobs, each with a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Feedback alignment: `B₀ ~ N(0, (init_scale · init_std)²)`. Default 1.
    pub fa_init_scale: f64,
    /// Sign symmetry: `s` in `M = s·sign(W)`. Default `init-std` (Xiao et al.).
    pub ss_scale: SignScale,
    /// Weight mirror knobs.
    pub wm: MirrorConfig,
    /// Kolen-Pollack: the decay `λ` applied to both `W` and `B` (replacing the weight decay on
    /// `W`). Must be > 0 for `W − B` to shrink. Default 1e-3.
    pub kp_decay: f64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            fa_init_scale: 1.0,
            ss_scale: SignScale::InitStd,
            wm: MirrorConfig::default(),
            kp_decay: 1e-3,
        }
    }
}

impl RuleConfig {
    /// Checks ranges; `key` prefixes name the config section.
    pub fn validate(&self) -> Result<()> {
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        let non_negative = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be a non-negative number, got {v}"),
                ))
            }
        };
        positive("rules.fa_init_scale", self.fa_init_scale)?;
        non_negative("rules.kp_decay", self.kp_decay)?;
        positive("rules.wm.sigma", self.wm.sigma)?;
        positive("rules.wm.lr", self.wm.lr)?;
        non_negative("rules.wm.decay", self.wm.decay)?;
        if self.wm.lr * self.wm.decay >= 1.0 {
            return Err(Error::config(
                "rules.wm",
                format!(
                    "lr × decay must be below 1 (B ← (1 − η_B λ_WM) B would flip B's sign every \
                     mirror batch), got {} × {}",
                    self.wm.lr, self.wm.decay
                ),
            ));
        }
        Ok(())
    }
}

/// Builds a rule. `batch_size` resolves the weight mirror's default mirror batch size.
pub fn build<T: Real>(kind: RuleKind, cfg: &RuleConfig, batch_size: usize) -> Box<dyn Rule<T>> {
    match kind {
        RuleKind::Backprop => Box::new(Backprop),
        RuleKind::FeedbackAlignment => Box::new(FeedbackAlignment {
            init_scale: cfg.fa_init_scale,
        }),
        RuleKind::SignSymmetry => Box::new(SignSymmetry {
            scale: cfg.ss_scale,
        }),
        RuleKind::WeightMirror => {
            let mut wm = cfg.wm.clone();
            if wm.batch_size == 0 {
                wm.batch_size = batch_size;
            }
            Box::new(WeightMirror { cfg: wm })
        }
        RuleKind::KolenPollack => Box::new(KolenPollack {
            decay: cfg.kp_decay,
        }),
    }
}
