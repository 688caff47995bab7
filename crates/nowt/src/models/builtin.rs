//! The built-in networks, each written once as a [`Description`]: `nowt models --show <name>`
//! prints one as a starting point for your own.
//!
//! - **mlp**: `linear → φ → … → linear`, `W₀ ~ N(0, (gain/√in)²)` (He's gain √2 for ReLU,
//!   LeCun's 1 for tanh and sigmoid).
//! - **lenet5** (LeCun et al. 1998, with ReLU and max pooling as usually run today): conv5×5 (6,
//!   padding 2) → relu → maxpool 2 → conv5×5 (16) → relu → maxpool 2 → fc 120 → relu → fc 84 →
//!   relu → fc classes. 28×28 inputs (MNIST) give the classic 16×5×5 features.
//! - **lenet-biotorch** (Sanfiz & Akrout 2021, `le_net_mnist`) for 32×32 inputs: conv5×5 (6) →
//!   relu → maxpool 2 → conv5×5 (16) → relu → maxpool 2 → conv5×5 (120) → relu → fc 84 → relu →
//!   fc classes, no padding anywhere (32 → 28 → 14 → 10 → 5 → 1).
//! - **resnet20/32/56** (He et al. 2016 §4.2): a 3×3 stem of 16 channels, three stages of `n`
//!   BasicBlocks with 16, 32 and 64 channels (stride 2 entering stages 2 and 3, with 1×1
//!   projection shortcuts — option B — or He et al.'s own option A, subsampling with
//!   zero-padded channels), global average pooling and a linear classifier; depth `6n + 2`.
//! - **resnet18/34/50** (Table 1): a 7×7 stride-2 stem of 64 channels, 3×3 stride-2 max pooling,
//!   four stages of 64, 128, 256, 512 channels (stride 2 entering stages 2–4), global average
//!   pooling and a linear classifier. ResNet-18/34 use BasicBlocks ([2,2,2,2] and [3,4,6,3]),
//!   ResNet-50 Bottlenecks ([3,4,6,3], output width 4× the stage's, the stride on the 3×3 as in
//!   torchvision's v1.5). Any input size from 32×32 up works; 224×224 is the paper's.
//!
//! Every convolution and linear layer of the convnets is He-normal (`√(2 / fan_in)`); the
//! ResNets' convolutions have no bias (batch norm follows each).

use super::describe::{Description, LayerSpec};
use crate::config::ModelKind;
use crate::layers::{ActivationKind, Shortcut};

/// The description of built-in `kind`; `hidden` and `activation` shape the MLP, `shortcut` the
/// CIFAR ResNets (the other models ignore them).
pub fn describe(
    kind: ModelKind,
    hidden: &[usize],
    activation: ActivationKind,
    shortcut: Shortcut,
) -> Description {
    let layers = match kind {
        ModelKind::Mlp => mlp(hidden, activation),
        ModelKind::Lenet5 => lenet5(),
        ModelKind::LenetBiotorch => lenet_biotorch(),
        ModelKind::Resnet20 | ModelKind::Resnet32 | ModelKind::Resnet56 => {
            resnet_cifar(kind.depth(), shortcut)
        }
        ModelKind::Resnet18 | ModelKind::Resnet34 | ModelKind::Resnet50 => {
            resnet_imagenet(kind.depth())
        }
    };
    Description {
        name: kind.name().to_string(),
        layers,
    }
}

fn linear(out: usize) -> LayerSpec {
    LayerSpec::Linear {
        name: None,
        out: Some(out),
        gain: None,
    }
}

/// The classifier: a linear layer to the dataset's classes.
fn classifier(name: Option<&str>) -> LayerSpec {
    LayerSpec::Linear {
        name: name.map(String::from),
        out: None,
        gain: None,
    }
}

fn act(kind: ActivationKind) -> LayerSpec {
    match kind {
        ActivationKind::Relu => LayerSpec::Relu { name: None },
        ActivationKind::Tanh => LayerSpec::Tanh { name: None },
        ActivationKind::Sigmoid => LayerSpec::Sigmoid { name: None },
    }
}

fn relu() -> LayerSpec {
    act(ActivationKind::Relu)
}

fn max_pool(name: Option<&str>, kernel: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::MaxPool {
        name: name.map(String::from),
        kernel,
        stride: (stride != kernel).then_some(stride),
        padding,
    }
}

/// A convolution of `kernel × kernel` to `out` channels with a bias, no padding, stride 1.
fn conv(out: usize, kernel: usize, padding: usize) -> LayerSpec {
    LayerSpec::Conv {
        name: None,
        out,
        kernel,
        stride: 1,
        padding,
        bias: true,
        gain: None,
    }
}

fn flatten() -> LayerSpec {
    LayerSpec::Flatten { name: None }
}

/// `inputs → hidden… → classes`, `activation` between the linear layers, each layer's gain the
/// activation's.
fn mlp(hidden: &[usize], activation: ActivationKind) -> Vec<LayerSpec> {
    let gain = Some(activation.gain());
    let mut layers = Vec::new();
    for &h in hidden {
        layers.push(LayerSpec::Linear {
            name: None,
            out: Some(h),
            gain,
        });
        layers.push(act(activation));
    }
    layers.push(LayerSpec::Linear {
        name: None,
        out: None,
        gain,
    });
    layers
}

fn lenet5() -> Vec<LayerSpec> {
    vec![
        conv(6, 5, 2),
        relu(),
        max_pool(None, 2, 2, 0),
        conv(16, 5, 0),
        relu(),
        max_pool(None, 2, 2, 0),
        flatten(),
        linear(120),
        relu(),
        linear(84),
        relu(),
        classifier(None),
    ]
}

fn lenet_biotorch() -> Vec<LayerSpec> {
    vec![
        conv(6, 5, 0),
        relu(),
        max_pool(None, 2, 2, 0),
        conv(16, 5, 0),
        relu(),
        max_pool(None, 2, 2, 0),
        conv(120, 5, 0),
        relu(),
        flatten(),
        linear(84),
        relu(),
        classifier(None),
    ]
}

/// A `k × k` convolution (stride `s`, padding `(k − 1)/2`, no bias) then batch norm, with a
/// ReLU fused into it when `relu`; the batch norm takes the convolution's name + `_bn`.
fn conv_bn(name: Option<&str>, out: usize, k: usize, s: usize, relu: bool) -> [LayerSpec; 2] {
    [
        LayerSpec::Conv {
            name: name.map(String::from),
            out,
            kernel: k,
            stride: s,
            padding: (k - 1) / 2,
            bias: false,
            gain: None,
        },
        LayerSpec::BatchNorm { name: None, relu },
    ]
}

/// A residual block from `c_in` channels whose body ends in `c_out`: the shortcut is the
/// identity unless the stride or the width changes, then `kind` (a 1×1 projection `short` with
/// its batch norm, or a subsample-and-pad `short`).
fn block(
    name: String,
    body: Vec<LayerSpec>,
    (c_in, c_out, stride): (usize, usize, usize),
    kind: Shortcut,
) -> LayerSpec {
    let shortcut = match (stride != 1 || c_in != c_out, kind) {
        (false, _) => Vec::new(),
        (true, Shortcut::Identity) => vec![LayerSpec::SubsamplePad {
            name: Some("short".into()),
            stride,
            out: c_out,
        }],
        (true, Shortcut::Projection) => conv_bn(Some("short"), c_out, 1, stride, false).into(),
    };
    LayerSpec::Residual {
        name: Some(name),
        body,
        shortcut,
    }
}

/// One ResNet block named `name` from `c_in` channels: a BasicBlock to `width` channels, or a
/// Bottleneck (`bottleneck`) to `4·width`, with `stride` and `shortcut` where it changes the
/// shape.
pub fn residual(
    name: &str,
    c_in: usize,
    width: usize,
    stride: usize,
    bottleneck: bool,
    shortcut: Shortcut,
) -> LayerSpec {
    let (body, out) = if bottleneck {
        (self::bottleneck(width, stride), 4 * width)
    } else {
        (basic(width, stride), width)
    };
    block(name.to_string(), body, (c_in, out, stride), shortcut)
}

/// conv3×3 (stride) → bn → relu → conv3×3 → bn.
fn basic(c_out: usize, stride: usize) -> Vec<LayerSpec> {
    let mut body = conv_bn(None, c_out, 3, stride, true).to_vec();
    body.extend(conv_bn(None, c_out, 3, 1, false));
    body
}

/// conv1×1 to `width` → bn → relu → conv3×3 (stride) → bn → relu → conv1×1 to `4·width` → bn.
fn bottleneck(width: usize, stride: usize) -> Vec<LayerSpec> {
    let mut body = conv_bn(None, width, 1, 1, true).to_vec();
    body.extend(conv_bn(None, width, 3, stride, true));
    body.extend(conv_bn(None, 4 * width, 1, 1, false));
    body
}

/// Global average pooling `pool` and the classifier `fc`.
fn head() -> [LayerSpec; 2] {
    [
        LayerSpec::GlobalAvgPool {
            name: Some("pool".into()),
        },
        classifier(Some("fc")),
    ]
}

/// The CIFAR ResNet of `depth` `6n + 2` (n ≥ 1) with `shortcut` where a stage begins.
pub fn resnet_cifar(depth: usize, shortcut: Shortcut) -> Vec<LayerSpec> {
    assert!(
        depth >= 8 && (depth - 2).is_multiple_of(6),
        "CIFAR ResNet depth must be 6n + 2, got {depth}"
    );
    let n = (depth - 2) / 6;
    let mut layers = conv_bn(Some("stem"), 16, 3, 1, true).to_vec();
    let mut ch = 16;
    for (stage, width) in [16, 32, 64].into_iter().enumerate() {
        for b in 0..n {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            layers.push(residual(&name, ch, width, stride, false, shortcut));
            ch = width;
        }
    }
    layers.extend(head());
    layers
}

/// The ImageNet ResNet of `depth` 18, 34 or 50.
pub fn resnet_imagenet(depth: usize) -> Vec<LayerSpec> {
    let (blocks, bottlenecks) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        _ => panic!("ImageNet ResNet depth must be 18, 34 or 50, got {depth}"),
    };
    let mut layers = conv_bn(Some("stem"), 64, 7, 2, true).to_vec();
    layers.push(max_pool(Some("stem_pool"), 3, 2, 1));
    let mut ch = 64;
    for (stage, width) in [64, 128, 256, 512].into_iter().enumerate() {
        for b in 0..blocks[stage] {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            let projection = Shortcut::Projection;
            layers.push(residual(&name, ch, width, stride, bottlenecks, projection));
            ch = if bottlenecks { 4 * width } else { width };
        }
    }
    layers.extend(head());
    layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ActivationKind;

    fn parts(kind: ModelKind, image: [usize; 3], classes: usize) -> Vec<super::super::Part> {
        describe(kind, &[], ActivationKind::Relu, Shortcut::Projection)
            .resolve(image, classes)
            .unwrap()
    }

    /// He et al. Table 1: weight layers (convolutions, projections and the classifier) and the
    /// 1,000-class output, for 224×224 inputs; 7×7 final maps pooled to one value per channel.
    #[test]
    fn imagenet_resnets_have_table_1_shapes() {
        for (kind, weight_layers, features) in [
            (ModelKind::Resnet18, 21, 512),
            (ModelKind::Resnet34, 37, 512),
            (ModelKind::Resnet50, 54, 2048),
        ] {
            let shapes = super::super::weight_shapes(&parts(kind, [3, 224, 224], 1000));
            assert_eq!(shapes.len(), weight_layers, "{kind:?}");
            assert_eq!(shapes.last().unwrap().1, vec![1000, features], "{kind:?}");
        }
        let (mut w, mut b) = (crate::rng(0, 0), crate::rng(0, 1));
        let parts = parts(ModelKind::Resnet18, [3, 224, 224], 1000);
        let mut net = super::super::build::<f32>(&parts, &mut w, &mut b);
        let outs = net.forward(&crate::Tensor::zeros(&[1, 3 * 224 * 224]), false);
        assert_eq!(outs[outs.len() - 3].shape(), &[1, 512, 7, 7]);
        assert_eq!(outs.last().unwrap().shape(), &[1, 1000]);
    }
}
