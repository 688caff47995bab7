//! Multi-layer perceptron: `Linear → φ → … → Linear`.

use super::Network;
use crate::layers::{Activation, ActivationKind, Linear};
use crate::tensor::Real;

/// The weight layers of an MLP `inputs → hidden… → classes`: `(name, [out, in])`, bottom to
/// top. Cheap: used to check a checkpoint's shapes before anything is allocated.
pub fn mlp_shapes(inputs: usize, hidden: &[usize], classes: usize) -> Vec<(String, [usize; 2])> {
    let mut sizes = vec![inputs];
    sizes.extend_from_slice(hidden);
    sizes.push(classes);
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, p)| (format!("fc{}", i + 1), [p[1], p[0]]))
        .collect()
}

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
    let shapes = mlp_shapes(inputs, hidden, classes);
    let mut layers: Vec<Box<dyn crate::layers::Layer<T>>> = Vec::new();
    for (i, (name, [out, inp])) in shapes.iter().enumerate() {
        let std = act.gain() / (*inp as f64).sqrt();
        layers.push(Box::new(Linear::new(name, *inp, *out, std, rng_w, rng_b)));
        if i + 1 < shapes.len() {
            layers.push(Box::new(Activation::new(
                &format!("{}{}", act.name(), i + 1),
                act,
            )));
        }
    }
    Network { layers }
}
