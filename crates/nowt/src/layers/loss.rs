//! Softmax cross-entropy, the loss every model here ends in.

use crate::tensor::{Real, Tensor};

/// Mean softmax cross-entropy of `logits: [N, C]` against `labels: [N]`, and its derivative
/// with respect to the logits, `δ = (softmax(z) − onehot(label)) / N`.
///
/// Uses the max-shifted log-sum-exp, so large logits do not overflow.
pub fn softmax_cross_entropy<T: Real>(logits: &Tensor<T>, labels: &[u32]) -> (T, Tensor<T>) {
    let (n, c) = (logits.rows(), logits.cols());
    assert_eq!(n, labels.len(), "one label per row");
    let inv_n = T::one() / T::of(n as f64);
    let mut delta = logits.clone();
    let mut total = 0f64;
    for (row, &label) in delta.data_mut().chunks_exact_mut(c).zip(labels) {
        let max = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let label = label as usize;
        let z_label = row[label] - max;
        let mut sum = T::zero();
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        // −log softmax_label = log Σ e^{z−max} − (z_label − max)
        total += (sum.ln() - z_label).f64();
        for v in row.iter_mut() {
            *v = *v / sum * inv_n;
        }
        row[label] -= inv_n;
    }
    (T::of(total / n as f64), delta)
}

/// The target's share of the loss's `∂loss/∂logits = p·s − t·s`: `−t·s`, the one-hot targets `t`
/// scaled by `−scale` (`scale = 1/N` for the mean over `N` samples), `[N, classes]`. What direct
/// random target projection sends down in place of the output error.
pub fn target_error<T: Real>(labels: &[u32], classes: usize, scale: f64) -> Tensor<T> {
    let mut t = Tensor::zeros(&[labels.len(), classes]);
    for (row, &label) in t.data_mut().chunks_exact_mut(classes).zip(labels) {
        row[label as usize] = T::of(-scale);
    }
    t
}
