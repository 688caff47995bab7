//! The CIFAR ResNets of He et al. (2016, §4.2): a 3×3 stem of 16 channels, three stages of
//! `n` BasicBlocks with 16, 32 and 64 channels (stride 2 entering stages 2 and 3, with 1×1
//! projection shortcuts), global average pooling and a linear classifier; depth `6n + 2`
//! (ResNet-20: n = 3, ResNet-32: 5, ResNet-56: 9).

use super::Network;
use crate::layers::{
    Activation, ActivationKind, BasicBlock, BatchNorm, Conv2d, GlobalAvgPool, Layer, Linear,
    Reshape,
};
use crate::tensor::Real;

/// A CIFAR ResNet of `depth` (`6n + 2`) for flat inputs holding images of `[C, H, W]`.
pub fn resnet_cifar<T: Real>(
    depth: usize,
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    assert!(
        depth >= 8 && (depth - 2).is_multiple_of(6),
        "CIFAR ResNet depth must be 6n + 2, got {depth}"
    );
    let n = (depth - 2) / 6;
    let [c, h, w] = image;
    let he = |fan_in: usize| (2.0 / fan_in as f64).sqrt();
    let mut layers: Vec<Box<dyn Layer<T>>> = vec![
        Box::new(Reshape {
            name: "image".into(),
            shape: image.to_vec(),
        }),
        Box::new(Conv2d::new(
            "stem",
            c,
            16,
            3,
            1,
            1,
            false,
            (h, w),
            he(9 * c),
            rng_w,
            rng_b,
        )),
        Box::new(BatchNorm::new("stem_bn", 16)),
        Box::new(Activation::new("stem_relu", ActivationKind::Relu)),
    ];
    let (mut ch, mut hw) = (16, (h, w));
    for (stage, width) in [16, 32, 64].into_iter().enumerate() {
        for b in 0..n {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            layers.push(Box::new(BasicBlock::new(
                &format!("layer{}.{b}", stage + 1),
                ch,
                width,
                stride,
                hw,
                rng_w,
                rng_b,
            )));
            ch = width;
            hw = ((hw.0 + 2 - 3) / stride + 1, (hw.1 + 2 - 3) / stride + 1);
        }
    }
    layers.push(Box::new(GlobalAvgPool {
        name: "pool".into(),
    }));
    layers.push(Box::new(Linear::new(
        "fc",
        64,
        classes,
        he(64),
        rng_w,
        rng_b,
    )));
    Network { layers }
}
