//! Multi-layer perceptron: `Linear → φ → … → Linear`.

use super::Network;
use crate::layers::{Activation, ActivationKind, Linear};
use crate::tensor::Real;

/// An MLP `inputs → hidden[0] → … → classes` with `act` between linear layers.
/// Weights are drawn `N(0, (gain/√fan_in)²)` (He for ReLU, LeCun otherwise) from `rng_w`;
/// feedback weights from `rng_b` with the same scale.
pub fn mlp<T: Real>(
    inputs: usize,
    hidden: &[usize],
    classes: usize,
    act: ActivationKind,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let mut sizes = vec![inputs];
    sizes.extend_from_slice(hidden);
    sizes.push(classes);
    let mut layers: Vec<Box<dyn crate::layers::Layer<T>>> = Vec::new();
    for (i, pair) in sizes.windows(2).enumerate() {
        let std = act.gain() / (pair[0] as f64).sqrt();
        layers.push(Box::new(Linear::new(
            &format!("fc{}", i + 1),
            pair[0],
            pair[1],
            std,
            rng_w,
            rng_b,
        )));
        if i + 2 < sizes.len() {
            layers.push(Box::new(Activation::new(
                &format!("{}{}", act.name(), i + 1),
                act,
            )));
        }
    }
    Network { layers }
}
