//! The measurements that make the paper's claims visible (DESIGN.md §5).

use serde::{Deserialize, Serialize};

use crate::tensor::{Real, Tensor};

/// The angle between two tensors, flattened, in degrees: `arccos(⟨a, b⟩ / ‖a‖‖b‖)`.
///
/// Computed as `2 atan2(‖â − b̂‖, ‖â + b̂‖)` on the unit vectors, in `f64`: stable near 0° and
/// 180° (where `arccos` loses half the digits), and exactly 0 for identical tensors.
/// `None` when either is zero (the angle is undefined).
pub fn angle_deg<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "angle between tensors of different sizes");
    let (na, nb) = (a.norm(), b.norm());
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let (mut diff, mut sum) = (0f64, 0f64);
    for (&x, &y) in a.data().iter().zip(b.data()) {
        let (x, y) = (x.f64() / na, y.f64() / nb);
        diff += (x - y) * (x - y);
        sum += (x + y) * (x + y);
    }
    Some((2.0 * diff.sqrt().atan2(sum.sqrt())).to_degrees())
}

/// The fraction of entries where `sign b = sign a`.
pub fn sign_concordance<T: Real>(a: &Tensor<T>, b: &Tensor<T>) -> f64 {
    let same = a
        .data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x.signum() == y.signum())
        .count();
    same as f64 / a.len().max(1) as f64
}

/// How many rows of `logits` have their label among the top `k` scores.
/// Ties count against the prediction (a label tied with others is not "in the top k" unless
/// fewer than k scores beat it strictly).
pub fn top_k_correct<T: Real>(logits: &Tensor<T>, labels: &[u32], k: usize) -> usize {
    let c = logits.cols();
    logits
        .data()
        .chunks_exact(c)
        .zip(labels)
        .filter(|(row, &label)| {
            let target = row[label as usize];
            row.iter().filter(|&&v| v > target).count() < k
        })
        .count()
}

/// Per weight layer, per epoch: how the feedback path relates to the forward path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub layer: String,
    /// `∠(W, M)` in degrees, `M` the rule's backward matrix (`B`; `s·sign W` for SS; `W` for BP).
    /// `None` for the first layer, whose `M` carries no error.
    pub weight_angle_deg: Option<f64>,
    /// `∠(δ_rule, δ_bp)` at the layer's input on the probe batch; `None` for the first layer.
    pub delta_angle_deg: Option<f64>,
    /// `‖M‖ / ‖W‖`; `None` for the first layer.
    pub norm_ratio: Option<f64>,
    /// Fraction of entries with `sign M = sign W`; `None` for the first layer.
    pub sign_concordance: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-k on hand-made logits: the label's rank is the number of scores strictly above it;
    /// a tie does not push a label out of the top k.
    #[test]
    fn top_k_counts_labels_among_the_k_highest_scores() {
        let logits = Tensor::<f64>::from_vec(
            &[4, 4],
            vec![
                0.9, 0.1, 0.0, 0.0, // label 0: first
                0.5, 0.2, 0.7, 0.1, // label 1: third
                0.3, 0.6, 0.1, 0.0, // label 0: second
                0.4, 0.4, 0.1, 0.0, // label 1: tied first
            ],
        );
        let labels = [0, 1, 0, 1];
        assert_eq!(top_k_correct(&logits, &labels, 1), 2);
        assert_eq!(top_k_correct(&logits, &labels, 2), 3);
        assert_eq!(top_k_correct(&logits, &labels, 3), 4);
        assert_eq!(top_k_correct(&logits, &[3, 3, 3, 2], 1), 0);
    }
}
