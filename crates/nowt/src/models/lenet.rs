//! A LeNet-5-style CNN (LeCun et al. 1998, with ReLU and max pooling as usually run today):
//! conv5×5 (6, padding 2) → relu → maxpool 2 → conv5×5 (16) → relu → maxpool 2 → fc 120 →
//! relu → fc 84 → relu → fc classes. 28×28 inputs (MNIST) give the classic 16×5×5 features.
//!
//! BioTorch's LeNet (Sanfiz & Akrout 2021, `le_net_mnist`) for 32×32 inputs: conv5×5 (6) → relu
//! → maxpool 2 → conv5×5 (16) → relu → maxpool 2 → conv5×5 (120) → relu → fc 84 → relu → fc
//! classes, no padding anywhere (32 → 28 → 14 → 10 → 5 → 1).

use super::Network;
use crate::layers::{Activation, ActivationKind, Conv2d, Layer, Linear, Pool2d, PoolKind, Reshape};
use crate::tensor::Real;

/// He et al.'s standard deviation for a layer of `fan_in` inputs, `√(2 / fan_in)`.
fn he(fan_in: usize) -> f64 {
    (2.0 / fan_in as f64).sqrt()
}

fn relu<T: Real>(name: &str) -> Box<dyn Layer<T>> {
    Box::new(Activation::new(name, ActivationKind::Relu))
}

/// 2×2 max pooling, stride 2.
fn max_pool<T: Real>(name: &str) -> Box<dyn Layer<T>> {
    Box::new(Pool2d::new(name, PoolKind::Max, 2, 2, 0))
}

/// LeNet-5 for flat inputs holding images of `[C, H, W]` (H, W ≥ 12).
pub fn lenet5<T: Real>(
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let [c, h, w] = image;
    assert!(
        h >= 12 && w >= 12,
        "LeNet-5 needs images of at least 12×12, got {h}×{w}"
    );
    let (h1, w1) = (h / 2, w / 2);
    let (h2, w2) = ((h1 - 4) / 2, (w1 - 4) / 2);
    let features = 16 * h2 * w2;
    let layers: Vec<Box<dyn Layer<T>>> = vec![
        Box::new(Reshape {
            name: "image".into(),
            shape: image.to_vec(),
        }),
        Box::new(Conv2d::new(
            "conv1",
            c,
            6,
            5,
            1,
            2,
            true,
            (h, w),
            he(25 * c),
            rng_w,
            rng_b,
        )),
        relu("relu1"),
        max_pool("pool1"),
        Box::new(Conv2d::new(
            "conv2",
            6,
            16,
            5,
            1,
            0,
            true,
            (h1, w1),
            he(150),
            rng_w,
            rng_b,
        )),
        relu("relu2"),
        max_pool("pool2"),
        Box::new(Reshape {
            name: "flatten".into(),
            shape: vec![features],
        }),
        Box::new(Linear::new(
            "fc1",
            features,
            120,
            he(features),
            rng_w,
            rng_b,
        )),
        relu("relu3"),
        Box::new(Linear::new("fc2", 120, 84, he(120), rng_w, rng_b)),
        relu("relu4"),
        Box::new(Linear::new("fc3", 84, classes, he(84), rng_w, rng_b)),
    ];
    Network { layers }
}

/// BioTorch's LeNet for flat inputs holding images of `[C, H, W]` (H, W ≥ 32; BioTorch resizes
/// (Fashion-)MNIST to 32×32). Every convolution and linear layer has a bias; He-normal `W`.
pub fn lenet_biotorch<T: Real>(
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let [c, h, w] = image;
    assert!(
        h >= 32 && w >= 32,
        "BioTorch's LeNet needs images of at least 32×32, got {h}×{w}"
    );
    // (name, C_in, C_out, input resolution) of the three unpadded 5×5 convolutions.
    let (h1, w1) = ((h - 4) / 2, (w - 4) / 2);
    let (h2, w2) = ((h1 - 4) / 2, (w1 - 4) / 2);
    let convs = [
        ("conv1", c, 6, (h, w)),
        ("conv2", 6, 16, (h1, w1)),
        ("conv3", 16, 120, (h2, w2)),
    ];
    let features = 120 * (h2 - 4) * (w2 - 4);
    let mut layers: Vec<Box<dyn Layer<T>>> = vec![Box::new(Reshape {
        name: "image".into(),
        shape: image.to_vec(),
    })];
    for (i, (name, c_in, c_out, hw)) in convs.into_iter().enumerate() {
        let std = he(25 * c_in);
        let conv = Conv2d::new(name, c_in, c_out, 5, 1, 0, true, hw, std, rng_w, rng_b);
        layers.push(Box::new(conv));
        layers.push(relu(&format!("relu{}", i + 1)));
        if i < 2 {
            layers.push(max_pool(&format!("pool{}", i + 1)));
        }
    }
    layers.extend([
        Box::new(Reshape {
            name: "flatten".into(),
            shape: vec![features],
        }) as Box<dyn Layer<T>>,
        Box::new(Linear::new("fc1", features, 84, he(features), rng_w, rng_b)),
        relu("relu4"),
        Box::new(Linear::new("fc2", 84, classes, he(84), rng_w, rng_b)),
    ]);
    Network { layers }
}
