//! Finite-difference oracles in f64 (DESIGN.md §6): every layer's backward under backprop
//! matches central differences for its input and every parameter; under feedback alignment
//! with random `B` the input error must *fail* the check while `grad_W` still passes.

use nowt::layers::{
    conv2d_naive, softmax_cross_entropy, target_error, Activation, ActivationKind, Backward,
    BatchNorm, Conv2d, Layer, Linear,
};
use nowt::models::mlp;
use nowt::params::WeightLayer;
use nowt::rules::{Backprop, FeedbackAlignment, Rule};
use nowt::Tensor;

const H: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn rng(stream: u64) -> nowt::Rng {
    nowt::rng(42, stream)
}

/// max |a − b| / max(1, max |b|): relative to the gradient's scale.
fn rel_err(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.data().iter().fold(1f64, |m, v| m.max(v.abs()));
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Central differences of `f` with respect to every entry of `t` (restored afterwards).
fn numeric(t: &mut Tensor<f64>, mut f: impl FnMut(&Tensor<f64>) -> f64) -> Tensor<f64> {
    let mut g = Tensor::zeros(t.shape());
    for i in 0..t.len() {
        let v = t.data()[i];
        t.data_mut()[i] = v + H;
        let up = f(t);
        t.data_mut()[i] = v - H;
        let down = f(t);
        t.data_mut()[i] = v;
        g.data_mut()[i] = (up - down) / (2.0 * H);
    }
    g
}

/// The scalar `L = Σ y ⊙ R` for a fixed random `R`, so `∂L/∂y = R`.
fn probe_loss(y: &Tensor<f64>, r: &Tensor<f64>) -> f64 {
    y.data().iter().zip(r.data()).map(|(a, b)| a * b).sum()
}

/// Checks one layer: analytic δ_in against central differences on x. Returns the error.
fn input_error(layer: &mut dyn Layer<f64>, x: &Tensor<f64>, rule: &dyn Rule<f64>) -> f64 {
    let y = layer.forward(x, true);
    let r = Tensor::randn(y.shape(), 1.0, &mut rng(7));
    let analytic = layer
        .backward(x, &y, &r, &mut Backward::new(rule), true)
        .expect("δ_in requested");
    let mut xv = x.clone();
    let numeric = numeric(&mut xv, |xv| probe_loss(&layer.forward(xv, true), &r));
    rel_err(&analytic, &numeric)
}

/// Checks `grad_W` and `grad_b` of a linear layer under `rule`. Returns the two errors.
fn param_errors(layer: &mut Linear<f64>, x: &Tensor<f64>, rule: &dyn Rule<f64>) -> (f64, f64) {
    let y = layer.forward(x, true);
    let r = Tensor::randn(y.shape(), 1.0, &mut rng(8));
    layer.backward(x, &y, &r, &mut Backward::new(rule), false);
    let (gw, gb) = (layer.p.grad_w.clone(), layer.p.grad_bias.clone().unwrap());
    let mut w = layer.p.w.clone();
    let nw = numeric(&mut w, |w| {
        let mut l = layer.clone();
        l.p.w = w.clone();
        probe_loss(&l.forward(x, true), &r)
    });
    let mut b = layer.p.bias.clone().unwrap();
    let nb = numeric(&mut b, |b| {
        let mut l = layer.clone();
        l.p.bias = Some(b.clone());
        probe_loss(&l.forward(x, true), &r)
    });
    (rel_err(&gw, &nw), rel_err(&gb, &nb))
}

fn linear() -> Linear<f64> {
    let mut l = Linear::new("fc", 6, 4, 0.5, &mut rng(1), &mut rng(2));
    l.p.bias = Some(Tensor::randn(&[4], 0.3, &mut rng(3)));
    l
}

#[test]
fn linear_backward_matches_finite_differences() {
    let x = Tensor::randn(&[5, 6], 1.0, &mut rng(4));
    let mut l = linear();
    let e_in = input_error(&mut l, &x, &Backprop);
    let (e_w, e_b) = param_errors(&mut l, &x, &Backprop);
    assert!(
        e_in < TOL && e_w < TOL && e_b < TOL,
        "δ_in {e_in:e}, W {e_w:e}, b {e_b:e}"
    );
}

#[test]
fn activations_match_finite_differences() {
    for kind in ActivationKind::ALL {
        // Keep ReLU inputs away from its kink so the difference quotient is defined.
        let mut x: Tensor<f64> = Tensor::randn(&[4, 7], 1.0, &mut rng(5));
        x.apply(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
        let e = input_error(&mut Activation::new("act", kind), &x, &Backprop);
        assert!(e < TOL, "{kind:?}: {e:e}");
    }
}

#[test]
fn softmax_cross_entropy_matches_finite_differences() {
    let labels = [0u32, 3, 2, 2, 1];
    let mut z = Tensor::randn(&[5, 4], 2.0, &mut rng(6));
    let (_, analytic) = softmax_cross_entropy(&z, &labels);
    let numeric = numeric(&mut z, |z| softmax_cross_entropy(z, &labels).0);
    assert!(rel_err(&analytic, &numeric) < TOL);
    // Large logits stay finite (max-shifted log-sum-exp).
    let big = Tensor::from_vec(&[1, 3], vec![1000.0f64, -1000.0, 0.0]);
    let (loss, d) = softmax_cross_entropy(&big, &[1]);
    assert!((loss - 2000.0).abs() < 1e-9 && d.all_finite());
}

/// Each activation's forward against values worked out by hand. Finite differences cannot see
/// a forward that solves the same equation as the true one: `1/(1 − e^{−a})` obeys the sigmoid's
/// `φ' = y(1 − y)` as exactly as `1/(1 + e^{−a})` does, so its backward matched its forward.
#[test]
fn activations_forward_by_hand() {
    let x = Tensor::from_vec(&[1, 4], vec![-3.0f64, 0.0, 0.5, 2.0]);
    let cases = [
        (ActivationKind::Relu, [0.0, 0.0, 0.5, 2.0]),
        (
            ActivationKind::Tanh,
            [
                -0.9950547536867305,
                0.0,
                0.46211715726000974,
                0.9640275800758169,
            ],
        ),
        (
            ActivationKind::Sigmoid,
            [
                0.04742587317756678,
                0.5,
                0.6224593312018546,
                0.8807970779778823,
            ],
        ),
    ];
    for (kind, want) in cases {
        let y = Activation::new("act", kind).forward(&x, true);
        for (got, want) in y.data().iter().zip(want) {
            assert!((got - want).abs() < 1e-15, "{kind:?}: {got} against {want}");
        }
    }
}

/// Direct random target projection's target term is the target's share of the loss
/// derivative: `−t/N` is `−1/N` at each row's label and 0 elsewhere, and
/// `δ − (−t/N) = softmax(z)/N`, the softmax written out here. (`nowt check` sends the same
/// `target_error` through `D` on both sides of its comparison, so a wrong sign passes there.)
#[test]
fn target_error_is_the_targets_share_of_the_loss_derivative() {
    let (n, c) = (5, 4);
    let labels = [0u32, 3, 2, 2, 1];
    let z: Tensor<f64> = Tensor::randn(&[n, c], 2.0, &mut rng(7));
    let (_, delta) = softmax_cross_entropy(&z, &labels);
    let t: Tensor<f64> = target_error(&labels, c, 1.0 / n as f64);
    assert_eq!(t.shape(), &[n, c]);
    for (i, &label) in labels.iter().enumerate() {
        let row = &z.data()[i * c..(i + 1) * c];
        let sum: f64 = row.iter().map(|v| v.exp()).sum();
        for (j, &zj) in row.iter().enumerate() {
            let k = i * c + j;
            let want = if j == label as usize {
                -1.0 / n as f64
            } else {
                0.0
            };
            assert_eq!(t.data()[k], want, "−t/N at row {i}, class {j}");
            let p = zj.exp() / sum / n as f64;
            let got = delta.data()[k] - t.data()[k];
            assert!(
                (got - p).abs() < 1e-12,
                "row {i}, class {j}: {got} against {p}"
            );
        }
    }
}

#[test]
fn whole_mlp_backward_matches_finite_differences() {
    for act in ActivationKind::ALL {
        let mut net = mlp::<f64>(5, &[7, 6], 3, act, &mut rng(10), &mut rng(11));
        let x = Tensor::randn(&[4, 5], 1.0, &mut rng(12));
        let labels = [0u32, 2, 1, 2];
        let loss = |net: &mut nowt::models::Network<f64>| {
            softmax_cross_entropy(&net.predict(&x, true), &labels).0
        };
        let outs = net.forward(&x, true);
        let (_, delta) = softmax_cross_entropy(outs.last().unwrap(), &labels);
        net.backward(&x, &outs, delta, None, &Backprop, None);
        let n_layers = net.weight_layers().len();
        for i in 0..n_layers {
            let analytic = net.weight_layers()[i].params().grad_w.clone();
            let mut w = net.weight_layers()[i].params().w.clone();
            let numeric = numeric(&mut w, |w| {
                net.weight_layers_mut()[i].params_mut().w = w.clone();
                loss(&mut net)
            });
            net.weight_layers_mut()[i].params_mut().w = w;
            let e = rel_err(&analytic, &numeric);
            assert!(e < TOL, "{act:?} layer {i}: {e:e}");
        }
    }
}

/// The negative control: with random `B`, feedback alignment's `δ_in` is not the gradient and
/// must fail the check, while `grad_W` (the same under every rule) still passes.
#[test]
fn feedback_alignment_fails_the_input_check_but_not_the_weight_check() {
    let x = Tensor::randn(&[5, 6], 1.0, &mut rng(4));
    let fa = FeedbackAlignment { init_scale: 1.0 };
    let mut l = linear();
    let e_in = input_error(&mut l, &x, &fa);
    let (e_w, e_b) = param_errors(&mut l, &x, &fa);
    assert!(
        e_in > 0.1,
        "FA δ_in passed the gradient check ({e_in:e}): B is not being used"
    );
    assert!(e_w < TOL && e_b < TOL, "W {e_w:e}, b {e_b:e}");
}

fn conv(k: usize, stride: usize, pad: usize, bias: bool) -> Conv2d<f64> {
    let mut c = Conv2d::new(
        "conv",
        3,
        4,
        k,
        stride,
        pad,
        bias,
        (7, 6),
        0.4,
        &mut rng(20),
        &mut rng(21),
    );
    if bias {
        c.p.bias = Some(Tensor::randn(&[4], 0.3, &mut rng(22)));
    }
    c
}

/// The fast convolution equals the loop nest for every stride/padding/kernel variant (3×3
/// stride 1 padding 1 by Winograd: odd and even sides, several images per block, bands of
/// tile rows).
#[test]
fn fast_conv_equals_the_loop_nest() {
    for (k, s, p, shape) in [
        (3, 1, 1, [2, 3, 7, 6]),
        (3, 1, 1, [5, 3, 6, 7]),
        (3, 1, 1, [1, 3, 37, 36]),
        (3, 2, 1, [2, 3, 7, 6]),
        (1, 1, 0, [2, 3, 7, 6]),
        (1, 2, 0, [2, 3, 7, 6]),
        (3, 1, 0, [2, 3, 7, 6]),
        (2, 2, 1, [2, 3, 7, 6]),
    ] {
        let mut c = conv(k, s, p, false);
        let x = Tensor::randn(&shape, 1.0, &mut rng(23));
        let fast = c.forward(&x, true);
        let slow = conv2d_naive(&x, &c.p.w, s, p);
        assert_eq!(fast.shape(), slow.shape());
        assert!(rel_err(&fast, &slow) < 1e-12, "k={k} s={s} p={p} {shape:?}");
    }
}

/// In `f32` the Winograd convolution stays within rounding of the exact one at ResNet-20's
/// sizes (He-initialised weights, unit inputs): relative error below 10⁻⁶ (F(2×2, 3×3):
/// 1.8–3.6·10⁻⁷; F(4×4, 3×3), tried and reverted, 3.5–5.5·10⁻⁶ — its transforms' entries up
/// to 8 and 1/24 round where F(2×2, 3×3)'s halves do not).
#[test]
fn winograd_in_f32_is_within_rounding_of_the_exact_convolution() {
    for (c, side) in [(16, 32), (32, 16), (64, 8)] {
        let mut layer = Conv2d::<f32>::new(
            "conv",
            c,
            c,
            3,
            1,
            1,
            false,
            (side, side),
            (2.0 / (9 * c) as f64).sqrt(),
            &mut rng(30),
            &mut rng(31),
        );
        let x = Tensor::<f32>::randn(&[4, c, side, side], 1.0, &mut rng(32));
        let widen = |t: &Tensor<f32>| {
            Tensor::from_vec(t.shape(), t.data().iter().map(|&v| v as f64).collect())
        };
        let fast = widen(&layer.forward(&x, true));
        let exact = conv2d_naive(&widen(&x), &widen(&layer.p.w), 1, 1);
        let err = rel_err(&fast, &exact);
        assert!(
            err < 1e-6,
            "{c} channels of {side}×{side}: relative error {err:e}"
        );
    }
}

/// `response_grad(x, terms)` — the weight mirror's `ηᵀ ξ` (`[(1, W)]`) and activation
/// alignment's `grad_W(ξ, β r − 2α b)` (`[(β, W), (−2α, B)]`), fused in the Winograd domain on
/// even planes of ≥ 256 outputs — is bit for bit `weight_grad` of the responses formed apart
/// (`linear` per term, then `β r − 2α b` as activation alignment wrote it), in `f32` and `f64`,
/// with `keep` and `scale` applied: on ResNet-20's two Winograd-summed sizes (several tasks of
/// several images, one image per block), past the channel count of nowt's own product kernel
/// (48: the GEMM library's), and where it falls back (an odd plane, an 8×8 one, a
/// strided kernel).
#[test]
fn fused_response_gradient_is_the_separate_passes_bit_for_bit() {
    fn check<T: nowt::Real>() {
        for (c, side, n, k, stride) in [
            (16, 32, 12, 3, 1),
            (32, 16, 20, 3, 1),
            (48, 16, 3, 3, 1),
            (3, 32, 1, 3, 1),
            (8, 17, 3, 3, 1),
            (16, 8, 8, 3, 1),
            (8, 16, 4, 3, 2),
        ] {
            let layer = Conv2d::<T>::new(
                "conv",
                c,
                c + 1,
                k,
                stride,
                1,
                false,
                (side, side),
                (2.0 / (9 * c) as f64).sqrt(),
                &mut rng(40),
                &mut rng(41),
            );
            let x = Tensor::<T>::randn(&[n, c, side, side], 1.0, &mut rng(42));
            let (w, b) = (&layer.p.w, &layer.p.feedback);
            let start = Tensor::<T>::randn(w.shape(), 1.0, &mut rng(43));
            let (keep, scale) = (T::of(0.5), T::of(0.25));
            let (beta, alpha) = (0.7, 0.3);
            let mirror = layer.linear(&x, w);
            let aligned = mirror.zip_map(&layer.linear(&x, b), |r, b| {
                T::of(beta) * r - T::of(2.0 * alpha) * b
            });
            let cases = [
                ("mirror", vec![(T::one(), w)], mirror),
                (
                    "activation alignment",
                    vec![(T::of(beta), w), (T::of(-2.0 * alpha), b)],
                    aligned,
                ),
            ];
            for (what, terms, response) in cases {
                let mut fused = start.clone();
                layer.response_grad(&x, &terms, &mut fused, keep, scale);
                let mut plain = start.clone();
                layer.weight_grad(&x, &response, &mut plain, keep, scale);
                assert_eq!(fused.shape(), plain.shape());
                let same = fused
                    .data()
                    .iter()
                    .zip(plain.data())
                    .all(|(a, b)| a.f64().to_bits() == b.f64().to_bits());
                assert!(
                    same,
                    "{what}: {c} channels, {side}×{side}, {n} images, stride {stride}"
                );
                assert_ne!(fused.data(), start.data(), "{what}: nothing was computed");
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// Conv2d's δ_in, grad_W and grad_b match central differences (stride and padding variants).
#[test]
fn conv_backward_matches_finite_differences() {
    // Small planes, and planes of ≥ 256 positions (several bands of output rows; for "same"
    // stride-1 kernels δ_in is then computed as a convolution with the flipped kernel). 3×3
    // stride-1 padding-1 kernels run by Winograd's F(2×2, 3×3): odd and even sides, several
    // images per block (7×6, 17×16) and one image cut into bands of tile rows (37×36).
    for (k, s, p, h, wd) in [
        (3, 1, 1, 7, 6),
        (3, 2, 1, 7, 6),
        (1, 1, 0, 7, 6),
        (1, 2, 0, 7, 6),
        (2, 2, 1, 7, 6),
        (3, 1, 1, 17, 16),
        (3, 1, 1, 37, 36),
        (5, 1, 2, 16, 17),
        (3, 2, 1, 33, 32),
    ] {
        let x = Tensor::randn(&[2, 3, h, wd], 1.0, &mut rng(24));
        let mut c = conv(k, s, p, true);
        let e_in = input_error(&mut c, &x, &Backprop);
        let y = c.forward(&x, true);
        let r = Tensor::randn(y.shape(), 1.0, &mut rng(8));
        c.backward(&x, &y, &r, &mut Backward::new(&Backprop), false);
        let (gw, gb) = (c.p.grad_w.clone(), c.p.grad_bias.clone().unwrap());
        let mut w = c.p.w.clone();
        let nw = numeric(&mut w, |w| {
            let mut l = c.clone();
            l.p.w = w.clone();
            probe_loss(&l.forward(&x, true), &r)
        });
        let mut b = c.p.bias.clone().unwrap();
        let nb = numeric(&mut b, |b| {
            let mut l = c.clone();
            l.p.bias = Some(b.clone());
            probe_loss(&l.forward(&x, true), &r)
        });
        let (e_w, e_b) = (rel_err(&gw, &nw), rel_err(&gb, &nb));
        assert!(
            e_in < TOL && e_w < TOL && e_b < TOL,
            "k={k} s={s} p={p} {h}×{wd}: δ_in {e_in:e}, W {e_w:e}, b {e_b:e}"
        );
        // Feedback alignment: the input error goes through B and must fail the check.
        let fa = FeedbackAlignment { init_scale: 1.0 };
        assert!(
            input_error(&mut c, &x, &fa) > 0.1,
            "k={k} s={s} p={p}: FA δ_in passed"
        );
    }
}

/// Batch norm (2d and 1d; batch statistics in training, running statistics in evaluation;
/// alone and with its fused ReLU) matches central differences for its input, γ and β.
#[test]
fn batch_norm_matches_finite_differences() {
    for (shape, train, relu) in [vec![3, 4, 5, 2], vec![6, 5]]
        .into_iter()
        .flat_map(|s| [(s.clone(), true), (s, false)])
        .flat_map(|(s, t)| [(s.clone(), t, false), (s, t, true)])
    {
        let c = shape[1];
        let mut bn = BatchNorm::<f64>::new("bn", c);
        bn.relu = relu;
        bn.gamma.value = Tensor::randn(&[c], 1.0, &mut rng(30));
        bn.beta.value = Tensor::randn(&[c], 1.0, &mut rng(31));
        bn.running_mean = Tensor::randn(&[c], 0.5, &mut rng(32));
        bn.running_var = Tensor::randn(&[c], 0.5, &mut rng(33)).map(|v: f64| v.abs() + 0.5);
        let x = Tensor::randn(&shape, 2.0, &mut rng(34)).map(|v: f64| v + 1.0);
        // Evaluation-mode checks must not move the running statistics between evaluations.
        let fwd = |bn: &BatchNorm<f64>, x: &Tensor<f64>| bn.clone().forward(x, train);
        let y = fwd(&bn, &x);
        let r = Tensor::randn(y.shape(), 1.0, &mut rng(35));
        let mut b = bn.clone();
        b.forward(&x, train);
        let analytic = b
            .backward(&x, &y, &r, &mut Backward::new(&Backprop), true)
            .unwrap();
        let mut xv = x.clone();
        let e_in = rel_err(
            &analytic,
            &numeric(&mut xv, |xv| probe_loss(&fwd(&bn, xv), &r)),
        );
        let mut g = bn.gamma.value.clone();
        let ng = numeric(&mut g, |g| {
            let mut l = bn.clone();
            l.gamma.value = g.clone();
            probe_loss(&fwd(&l, &x), &r)
        });
        let mut be = bn.beta.value.clone();
        let nb = numeric(&mut be, |be| {
            let mut l = bn.clone();
            l.beta.value = be.clone();
            probe_loss(&fwd(&l, &x), &r)
        });
        let (e_g, e_b) = (rel_err(&b.gamma.grad, &ng), rel_err(&b.beta.grad, &nb));
        assert!(
            e_in < TOL && e_g < TOL && e_b < TOL,
            "{shape:?} train={train} relu={relu}: x {e_in:e} γ {e_g:e} β {e_b:e}"
        );
    }
}

/// Max and average pooling, with and without overlap and padding: δ_in matches central
/// differences (random inputs have no ties, so max pooling is differentiable there).
#[test]
fn pooling_matches_finite_differences() {
    use nowt::layers::{Pool2d, PoolKind};
    let x = Tensor::randn(&[2, 3, 7, 7], 1.0, &mut rng(50));
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)] {
            let mut pool = Pool2d::new("pool", kind, k, s, p);
            let e = input_error(&mut pool, &x, &Backprop);
            assert!(e < TOL, "{kind:?} k{k} s{s} p{p}: {e:e}");
        }
    }
}

/// Where a window's maximum is tied, max pooling's δ goes to the first maximal tap in row-major
/// order and to no other; average pooling of a window of −0 is −0 (its sum starts from −0, as
/// `Iterator::sum` does).
#[test]
fn max_pooling_sends_delta_to_the_first_maximum() {
    use nowt::layers::{Layer, Pool2d, PoolKind};
    // Window of output 0: taps 0, 1, 4, 5 with the maximum 2.0 at 1 and 4; output 1's window
    // (taps 2, 3, 6, 7) all equal.
    let x = Tensor::from_vec(
        &[1, 1, 2, 4],
        vec![1.0, 2.0, 7.0, 7.0, 2.0, 0.5, 7.0, 7.0f64],
    );
    let mut max = Pool2d::new("max", PoolKind::Max, 2, 2, 0);
    let y = max.forward(&x, true);
    assert_eq!(y.data(), &[2.0, 7.0]);
    let d = Tensor::from_vec(&[1, 1, 1, 2], vec![3.0, 5.0]);
    let dx = max
        .backward(&x, &y, &d, &mut Backward::new(&Backprop), true)
        .unwrap();
    assert_eq!(dx.data(), &[0.0, 3.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let zeros = Tensor::from_vec(&[1, 1, 2, 2], vec![-0.0f64; 4]);
    let y = Pool2d::new("avg", PoolKind::Avg, 2, 2, 0).forward(&zeros, true);
    assert!(y.data()[0] == 0.0 && y.data()[0].is_sign_negative());
}

/// The 2 × 2, stride-2 pooling path (LeNet's, VGG's) is the general window walk bit for bit:
/// values from a handful of levels (so windows tie, `−0` beside `+0`), NaN among them, `δ`
/// with `−0`s, even and odd planes (an odd plane's last row and column are in no window).
#[test]
fn two_by_two_pooling_is_the_general_walk_bit_for_bit() {
    use nowt::layers::{Layer, Pool2d, PoolKind};
    use rand::Rng;
    let mut r = rng(51);
    let levels = [-1.0, -0.0, 0.0, 1.0, 2.0, f32::NAN];
    for shape in [[2, 3, 8, 8], [2, 2, 7, 9], [1, 2, 6, 5]] {
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|_| levels[r.random_range(0..levels.len())])
            .collect();
        let x = Tensor::from_vec(&shape, x);
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let mut pool = Pool2d::new("pool", kind, 2, 2, 0);
            let y = pool.forward(&x, true);
            let reference = pool.forward_reference(&x);
            let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&reference), "{kind:?} {shape:?}: forward");
            let m = y.len();
            let d: Vec<f32> = (0..m)
                .map(|i| {
                    if i % 3 == 0 {
                        -0.0
                    } else {
                        r.random_range(-1.0..1.0)
                    }
                })
                .collect();
            let d = Tensor::from_vec(y.shape(), d);
            let dx = pool
                .backward(&x, &y, &d, &mut Backward::new(&Backprop), true)
                .unwrap();
            let reference = pool.backward_reference(&x, &y, &d);
            assert_eq!(bits(&dx), bits(&reference), "{kind:?} {shape:?}: backward");
        }
    }
}

/// Max pooling takes the window's largest value (padding never wins), average pooling the
/// window's sum over k² (padding counted as zeros), on a hand-made plane.
#[test]
fn pooling_values_by_hand() {
    use nowt::layers::{Pool2d, PoolKind};
    let x = Tensor::from_vec(&[1, 1, 2, 2], vec![-4.0, -3.0, -2.0, -1.0f64]);
    let mut max = Pool2d::new("max", PoolKind::Max, 2, 1, 1);
    let y = max.forward(&x, false);
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(
        y.data(),
        &[-4.0, -3.0, -3.0, -2.0, -1.0, -1.0, -2.0, -1.0, -1.0]
    );
    let mut avg = Pool2d::new("avg", PoolKind::Avg, 2, 1, 1);
    let y = avg.forward(&x, false);
    assert_eq!(y.data()[0], -1.0);
    assert_eq!(y.data()[4], -2.5);
    // Stride 2: the window of output o starts at o·s − p (what finite differences, which move
    // forward and backward together, cannot see).
    let x = Tensor::from_vec(&[1, 1, 4, 4], (1..=16).map(f64::from).collect());
    let y = Pool2d::new("max", PoolKind::Max, 2, 2, 0).forward(&x, false);
    assert_eq!(y.data(), &[6.0, 8.0, 14.0, 16.0]);
    let y = Pool2d::new("avg", PoolKind::Avg, 3, 2, 1).forward(&x, false);
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), [14.0, 30.0, 57.0, 99.0].map(|s| s * (1.0 / 9.0)));
}

/// Option A's shortcut: `x[:, :, ::s, ::s]` with `(C_out − C_in)/2` zero channels in front, by
/// hand on an odd plane (7×7, stride 2: rows and columns 0, 2, 4, 6), and its backward against
/// central differences; a BasicBlock with it matches central differences too, and has only its
/// two convolutions as weight layers.
#[test]
fn subsample_pad_shortcut_by_hand_and_finite_differences() {
    use nowt::layers::{Shortcut, SubsamplePad};
    use nowt::models::residual_block;
    let mut pad = SubsamplePad {
        name: "short".into(),
        stride: 2,
        c_out: 5,
    };
    let x = Tensor::randn(&[2, 2, 7, 7], 1.0, &mut rng(46));
    let y = pad.forward(&x, true);
    assert_eq!(y.shape(), &[2, 5, 4, 4]);
    for (n, c, i, j) in [(0, 0, 0, 0), (1, 4, 3, 2), (1, 0, 2, 3)] {
        let at = ((n * 5 + c) * 4 + i) * 4 + j;
        let want = match c {
            1 | 2 => x.data()[((n * 2 + c - 1) * 7 + 2 * i) * 7 + 2 * j],
            _ => 0.0,
        };
        assert_eq!(y.data()[at], want, "y[{n}, {c}, {i}, {j}]");
    }
    let e = input_error(&mut pad, &x, &Backprop);
    assert!(e < TOL, "subsample-pad δ_in: {e:e}");
    let x = Tensor::randn(&[4, 2, 8, 8], 1.0, &mut rng(47));
    let (shortcut, r1, r2) = (Shortcut::Identity, &mut rng(48), &mut rng(49));
    let mut block = residual_block::<f64>("basic", [2, 8, 8], 4, 2, false, shortcut, r1, r2);
    let e = input_error(block.as_mut(), &x, &Backprop);
    assert!(e < TOL, "BasicBlock with option A: δ_in {e:e}");
    let mut v = Vec::new();
    block.collect_weights(&mut v);
    let names: Vec<&str> = v.iter().map(|w| w.params().name.as_str()).collect();
    assert_eq!(names, ["basic.conv1", "basic.conv2"]);
}

/// Residual blocks (BasicBlock and Bottleneck) with a projection shortcut (stride 2, widening),
/// in training mode: the input error and every convolution's weight gradient match central
/// differences. (Batch norm over only a few values per channel is strongly curved; 4 images of
/// 8×8 keep the difference quotient's own error well under the tolerance.)
#[test]
fn residual_block_matches_finite_differences() {
    use nowt::layers::Shortcut;
    use nowt::models::residual_block;
    let x = Tensor::randn(&[4, 2, 8, 8], 1.0, &mut rng(40));
    let blocks = [
        residual_block::<f64>(
            "basic",
            [2, 8, 8],
            3,
            2,
            false,
            Shortcut::Projection,
            &mut rng(41),
            &mut rng(42),
        ),
        residual_block::<f64>(
            "bottleneck",
            [2, 8, 8],
            2,
            2,
            true,
            Shortcut::Projection,
            &mut rng(44),
            &mut rng(45),
        ),
    ];
    for (mut block, convs) in blocks.into_iter().zip([3, 4]) {
        let e_in = input_error(block.as_mut(), &x, &Backprop);
        assert!(e_in < TOL, "{}: δ_in {e_in:e}", block.name());
        let y = block.forward(&x, true);
        let r = Tensor::randn(y.shape(), 1.0, &mut rng(43));
        block.backward(&x, &y, &r, &mut Backward::new(&Backprop), true);
        let n_weights = {
            let mut v = Vec::new();
            block.collect_weights(&mut v);
            v.len()
        };
        assert_eq!(
            n_weights,
            convs,
            "{}: the convolutions and the projection",
            block.name()
        );
        for i in 0..n_weights {
            let analytic = {
                let mut v = Vec::new();
                block.collect_weights(&mut v);
                v[i].params().grad_w.clone()
            };
            let mut w = {
                let mut v = Vec::new();
                block.collect_weights(&mut v);
                v[i].params().w.clone()
            };
            let numeric = numeric(&mut w, |w| {
                let mut v = Vec::new();
                block.collect_weights_mut(&mut v);
                v[i].params_mut().w = w.clone();
                drop(v);
                probe_loss(&block.forward(&x, true), &r)
            });
            let e = rel_err(&analytic, &numeric);
            assert!(e < TOL, "{} weight layer {i}: {e:e}", block.name());
        }
    }
}

/// Global average pooling (`[N, C, H, W] → [N, C]`, the mean over each plane) and reshape match
/// central differences, and pooling's forward is the plane's mean by hand.
#[test]
fn global_average_pooling_and_reshape_match_finite_differences() {
    use nowt::layers::{GlobalAvgPool, Reshape};
    let x = Tensor::randn(&[3, 4, 5, 6], 1.0, &mut rng(50));
    let mut gap = GlobalAvgPool { name: "gap".into() };
    let e = input_error(&mut gap, &x, &Backprop);
    assert!(e < TOL, "global average pooling: {e:e}");
    let y = gap.forward(&x, true);
    assert_eq!(y.shape(), &[3, 4]);
    let plane: f64 = x.data()[30..60].iter().sum::<f64>() / 30.0;
    assert!(
        (y.data()[1] - plane).abs() < 1e-12,
        "the mean of image 0, channel 1"
    );
    let mut flat = Reshape {
        name: "flatten".into(),
        shape: vec![120],
    };
    let e = input_error(&mut flat, &x, &Backprop);
    assert!(e < TOL, "reshape: {e:e}");
    let mut image = Reshape {
        name: "image".into(),
        shape: vec![4, 5, 6],
    };
    let e = input_error(
        &mut image,
        &Tensor::randn(&[3, 120], 1.0, &mut rng(51)),
        &Backprop,
    );
    assert!(e < TOL, "reshape to images: {e:e}");
}

/// A whole network under backprop, in training mode (batch norm on batch statistics): every
/// weight layer's `grad_W` matches central differences of the loss, at `samples` entries of
/// each `W` picked at random.
fn whole_network_check(
    net: &mut nowt::models::Network<f64>,
    x: &Tensor<f64>,
    labels: &[u32],
    samples: usize,
) {
    use rand::Rng;
    let outs = net.forward(x, true);
    let (_, delta) = softmax_cross_entropy(outs.last().unwrap(), labels);
    net.backward(x, &outs, delta, None, &Backprop, None);
    let mut pick = rng(60);
    for i in 0..net.weight_layers().len() {
        let (name, analytic) = {
            let p = net.weight_layers()[i].params();
            (p.name.clone(), p.grad_w.clone())
        };
        let scale = analytic.data().iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for _ in 0..samples {
            let j = pick.random_range(0..analytic.len());
            let at = |net: &mut nowt::models::Network<f64>, d: f64| {
                net.weight_layers_mut()[i].params_mut().w.data_mut()[j] += d;
                let l = softmax_cross_entropy(&net.predict(x, true), labels).0;
                net.weight_layers_mut()[i].params_mut().w.data_mut()[j] -= d;
                l
            };
            let numeric = (at(net, H) - at(net, -H)) / (2.0 * H);
            let e = (analytic.data()[j] - numeric).abs() / scale;
            assert!(
                e < 1e-5,
                "{name}[{j}]: analytic {} vs numeric {numeric} ({e:e})",
                analytic.data()[j]
            );
        }
    }
}

/// LeNet-5 and BioTorch's LeNet (convolutions with bias, max pooling, flatten, linear layers;
/// BioTorch's with its shapes) and a small CIFAR ResNet
/// (batch norm in training mode, residual blocks with projections or option A's shortcuts,
/// global average pooling), each checked whole under backprop.
#[test]
fn whole_lenet_and_small_resnet_match_finite_differences() {
    let mut lenet = nowt::models::lenet5::<f64>([1, 12, 12], 4, &mut rng(61), &mut rng(62));
    let x = Tensor::randn(&[3, 144], 1.0, &mut rng(63));
    whole_network_check(&mut lenet, &x, &[0, 3, 1], 12);
    let mut biotorch =
        nowt::models::lenet_biotorch::<f64>([1, 32, 32], 4, &mut rng(67), &mut rng(68));
    let x = Tensor::randn(&[2, 1024], 1.0, &mut rng(69));
    whole_network_check(&mut biotorch, &x, &[1, 3], 8);
    let shapes: Vec<Vec<usize>> = biotorch
        .weight_layers()
        .iter()
        .map(|l| l.params().w.shape().to_vec())
        .collect();
    let want: [&[usize]; 5] = [
        &[6, 1, 5, 5],
        &[16, 6, 5, 5],
        &[120, 16, 5, 5],
        &[84, 120],
        &[4, 84],
    ];
    assert_eq!(shapes, want);
    use nowt::layers::Shortcut;
    for shortcut in [Shortcut::Projection, Shortcut::Identity] {
        let (r1, r2) = (&mut rng(64), &mut rng(65));
        let mut resnet = nowt::models::resnet_cifar::<f64>(8, [3, 8, 8], 5, shortcut, r1, r2);
        let x = Tensor::randn(&[4, 192], 1.0, &mut rng(66));
        whole_network_check(&mut resnet, &x, &[0, 4, 2, 2], 6);
    }
}
