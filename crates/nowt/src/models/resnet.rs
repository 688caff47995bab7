//! The ResNets of He et al. (2016), written once for every rule.
//!
//! CIFAR (§4.2): a 3×3 stem of 16 channels, three stages of `n` BasicBlocks with 16, 32 and 64
//! channels (stride 2 entering stages 2 and 3, with 1×1 projection shortcuts — option B — or
//! He et al.'s own option A, subsampling with zero-padded channels), global average pooling and a
//! linear classifier; depth `6n + 2` (ResNet-20: n = 3, ResNet-32: 5, ResNet-56: 9).
//!
//! ImageNet (Table 1): a 7×7 stride-2 stem of 64 channels, 3×3 stride-2 max pooling, four
//! stages of 64, 128, 256, 512 channels (stride 2 entering stages 2–4), global average
//! pooling and a linear classifier. ResNet-18/34 use BasicBlocks ([2,2,2,2] and [3,4,6,3]),
//! ResNet-50 Bottlenecks ([3,4,6,3], output width 4× the stage's). Any input size from 32×32
//! up works (the pooling is global); 224×224 is the paper's.

use super::Network;
use crate::layers::{
    conv_bn, same_out, GlobalAvgPool, Layer, Linear, Pool2d, PoolKind, Reshape, Residual, Shortcut,
};
use crate::tensor::Real;

/// A CIFAR ResNet of `depth` (`6n + 2`) for flat inputs holding images of `[C, H, W]`, with
/// `shortcut` where a stage begins.
pub fn resnet_cifar<T: Real>(
    depth: usize,
    image: [usize; 3],
    classes: usize,
    shortcut: Shortcut,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    assert!(
        depth >= 8 && (depth - 2).is_multiple_of(6),
        "CIFAR ResNet depth must be 6n + 2, got {depth}"
    );
    let n = (depth - 2) / 6;
    let [_, h, w] = image;
    let mut layers = stem(image, 16, 3, 1, rng_w, rng_b);
    let (mut ch, mut hw) = (16, (h, w));
    for (stage, width) in [16, 32, 64].into_iter().enumerate() {
        for b in 0..n {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            layers.push(Box::new(Residual::basic(
                &name, ch, width, stride, hw, shortcut, rng_w, rng_b,
            )));
            ch = width;
            hw = same_out(hw, 3, stride);
        }
    }
    head(layers, ch, classes, rng_w, rng_b)
}

/// An ImageNet ResNet of `depth` 18, 34 or 50 for flat inputs holding images of `[C, H, W]`.
pub fn resnet_imagenet<T: Real>(
    depth: usize,
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let (blocks, bottleneck) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        _ => panic!("ImageNet ResNet depth must be 18, 34 or 50, got {depth}"),
    };
    let mut layers = stem(image, 64, 7, 2, rng_w, rng_b);
    let pool = Pool2d::new("stem_pool", PoolKind::Max, 3, 2, 1);
    let mut hw = same_out((image[1], image[2]), 7, 2);
    hw = (pool.out_len(hw.0), pool.out_len(hw.1));
    layers.push(Box::new(pool));
    let mut ch = 64;
    for (stage, width) in [64, 128, 256, 512].into_iter().enumerate() {
        for b in 0..blocks[stage] {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            let block = if bottleneck {
                Residual::bottleneck(&name, ch, width, stride, hw, rng_w, rng_b)
            } else {
                let projection = Shortcut::Projection;
                Residual::basic(&name, ch, width, stride, hw, projection, rng_w, rng_b)
            };
            layers.push(Box::new(block));
            ch = if bottleneck { 4 * width } else { width };
            hw = same_out(hw, 3, stride);
        }
    }
    head(layers, ch, classes, rng_w, rng_b)
}

/// Flat input → image → conv `k × k` (stride `s`) → bn with ReLU.
fn stem<T: Real>(
    image: [usize; 3],
    width: usize,
    k: usize,
    s: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Vec<Box<dyn Layer<T>>> {
    let mut layers: Vec<Box<dyn Layer<T>>> = vec![Box::new(Reshape {
        name: "image".into(),
        shape: image.to_vec(),
    })];
    let hw = (image[1], image[2]);
    layers.extend(conv_bn(
        "stem", image[0], width, k, s, true, hw, rng_w, rng_b,
    ));
    layers
}

/// Global average pooling and the linear classifier `fc`.
fn head<T: Real>(
    mut layers: Vec<Box<dyn Layer<T>>>,
    ch: usize,
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    layers.push(Box::new(GlobalAvgPool {
        name: "pool".into(),
    }));
    let std = (2.0 / ch as f64).sqrt();
    layers.push(Box::new(Linear::new("fc", ch, classes, std, rng_w, rng_b)));
    Network { layers }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// He et al. Table 1: weight layers (convolutions, projections and the classifier) and the
    /// 1,000-class output, for 224×224 inputs; 7×7 final maps pooled to one value per channel.
    #[test]
    fn imagenet_resnets_have_table_1_shapes() {
        for (depth, weight_layers, features) in [(18, 21, 512), (34, 37, 512), (50, 54, 2048)] {
            let (mut w, mut b) = (crate::rng(0, 0), crate::rng(0, 1));
            let mut net = resnet_imagenet::<f32>(depth, [3, 224, 224], 1000, &mut w, &mut b);
            let layers = net.weight_layers();
            assert_eq!(layers.len(), weight_layers, "ResNet-{depth}");
            let fc = layers.last().unwrap().params().w.shape().to_vec();
            assert_eq!(fc, vec![1000, features], "ResNet-{depth}");
            if depth == 18 {
                let x = crate::Tensor::zeros(&[1, 3 * 224 * 224]);
                let outs = net.forward(&x, false);
                let pooled = &outs[outs.len() - 3];
                assert_eq!(pooled.shape(), &[1, 512, 7, 7]);
                assert_eq!(outs.last().unwrap().shape(), &[1, 1000]);
            }
        }
    }
}
