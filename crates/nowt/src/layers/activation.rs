//! Element-wise nonlinearities. Their backward is the ordinary local derivative under every
//! rule, written in terms of the output `y` so that nothing extra is stored.

use serde::{Deserialize, Serialize};

use super::{Backward, Layer};
use crate::tensor::{Real, Tensor};

/// Which nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// `max(0, a)`, `φ' = [y > 0]`
    Relu,
    /// `tanh a`, `φ' = 1 − y²`
    Tanh,
    /// `1 / (1 + e^{−a})`, `φ' = y (1 − y)`
    Sigmoid,
}

impl ActivationKind {
    pub const ALL: [ActivationKind; 3] = [
        ActivationKind::Relu,
        ActivationKind::Tanh,
        ActivationKind::Sigmoid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ActivationKind::Relu => "relu",
            ActivationKind::Tanh => "tanh",
            ActivationKind::Sigmoid => "sigmoid",
        }
    }

    /// The weight-init gain: He (`√2`) for ReLU, LeCun (`1`) for the saturating ones.
    pub fn gain(self) -> f64 {
        match self {
            ActivationKind::Relu => 2f64.sqrt(),
            _ => 1.0,
        }
    }
}

/// An element-wise nonlinearity layer.
#[derive(Clone, Debug)]
pub struct Activation {
    pub name: String,
    pub kind: ActivationKind,
}

impl Activation {
    pub fn new(name: &str, kind: ActivationKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
        }
    }
}

impl<T: Real> Layer<T> for Activation {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, _train: bool) -> Tensor<T> {
        match self.kind {
            ActivationKind::Relu => x.map(|a| a.max(T::zero())),
            ActivationKind::Tanh => x.map(|a| a.tanh()),
            ActivationKind::Sigmoid => x.map(|a| T::one() / (T::one() + (-a).exp())),
        }
    }

    fn backward(
        &mut self,
        _x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        _ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        if !need_delta_in {
            return None;
        }
        // δ_in = δ ⊙ φ'(a), with φ' written through y = φ(a)
        Some(match self.kind {
            ActivationKind::Relu => {
                delta.zip_map(y, |d, y| if y > T::zero() { d } else { T::zero() })
            }
            ActivationKind::Tanh => delta.zip_map(y, |d, y| d * (T::one() - y * y)),
            ActivationKind::Sigmoid => delta.zip_map(y, |d, y| d * y * (T::one() - y)),
        })
    }
}
