//! The residual blocks of He et al. (2016): BasicBlock (two 3×3 convolutions) and Bottleneck
//! (1×1 reduce, 3×3, 1×1 expand ×4), each with batch norm and an identity shortcut, or where the
//! stride or width changes a 1×1 projection (option B) or a subsample-and-pad (option A). One
//! composition: every derivative is its parts'.

use serde::{Deserialize, Serialize};

use super::{
    backward_chain, forward_chain, Backward, BatchNorm, Conv2d, Layer, Param, SubsamplePad,
    WeightLayer,
};
use crate::tensor::{Real, Tensor};

/// A block's shortcut where the stride or the width changes (He et al. 2016, §3.3 and §4.2;
/// config key `shortcut`, for the CIFAR ResNets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shortcut {
    /// `bn(conv1×1(x))` with the block's stride (option B; a weight layer on the rule seam).
    /// The default.
    #[default]
    Projection,
    /// `x[:, :, ::s, ::s]` with zero channels added (option A: no parameters), what He et al.
    /// use for CIFAR and BioTorch's CIFAR ResNets do.
    Identity,
}

/// `y = relu(main(x) + shortcut(x))`: `main` is a chain of conv → bn (→ relu) stages ending in
/// a batch norm, shortcut = `x`, or when the stride or the width changes `bn(conv1×1(x))`
/// ([`Shortcut::Projection`]) or `x` subsampled and zero-padded ([`Shortcut::Identity`]).
pub struct Residual<T> {
    pub name: String,
    /// The main path, in order (BasicBlock: conv1, conv1_bn with its ReLU, conv2, conv2_bn).
    main: Vec<Box<dyn Layer<T>>>,
    /// 1×1 projection and its batch norm, or the subsample-and-pad, if any.
    shortcut: Vec<Box<dyn Layer<T>>>,
    /// From the last forward: each main and shortcut layer's output (the main path's last one
    /// replaced by an empty placeholder, see `forward`).
    main_outs: Vec<Tensor<T>>,
    short_outs: Vec<Tensor<T>>,
}

/// The output size of a `k × k` convolution with stride `s` and padding `(k − 1)/2`.
pub fn same_out(hw: (usize, usize), k: usize, s: usize) -> (usize, usize) {
    let p = (k - 1) / 2;
    ((hw.0 + 2 * p - k) / s + 1, (hw.1 + 2 * p - k) / s + 1)
}

/// Conv (`k × k`, stride `s`, padding `(k − 1)/2`, no bias, He-normal) then batch norm, and a
/// ReLU fused into the batch norm when `relu` (layer `{name}_bn`).
#[allow(clippy::too_many_arguments)]
pub fn conv_bn<T: Real>(
    name: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    s: usize,
    relu: bool,
    in_hw: (usize, usize),
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> [Box<dyn Layer<T>>; 2] {
    let std = (2.0 / (k * k * c_in) as f64).sqrt();
    [
        Box::new(Conv2d::new(
            name,
            c_in,
            c_out,
            k,
            s,
            (k - 1) / 2,
            false,
            in_hw,
            std,
            rng_w,
            rng_b,
        )),
        Box::new(if relu {
            BatchNorm::with_relu(&format!("{name}_bn"), c_out)
        } else {
            BatchNorm::new(&format!("{name}_bn"), c_out)
        }),
    ]
}

/// One conv → bn stage of a block's main path: name suffix, `C_in`, `C_out`, kernel, stride,
/// whether a ReLU follows, input resolution.
type Stage = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    bool,
    (usize, usize),
);

impl<T: Real> Residual<T> {
    /// The BasicBlock from `c_in` to `c_out` channels at input resolution `in_hw`: conv3×3
    /// (stride) → bn → relu → conv3×3 → bn. Layers `{name}.conv1`, `{name}.conv1_bn`, ….
    #[allow(clippy::too_many_arguments)]
    pub fn basic(
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
        in_hw: (usize, usize),
        shortcut: Shortcut,
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        let mid_hw = same_out(in_hw, 3, stride);
        let stages = [
            ("conv1", c_in, c_out, 3, stride, true, in_hw),
            ("conv2", c_out, c_out, 3, 1, false, mid_hw),
        ];
        let main = Self::main_path(name, &stages, rng_w, rng_b);
        let geometry = (c_in, c_out, stride, in_hw);
        Self::new(name, main, geometry, shortcut, rng_w, rng_b)
    }

    /// The Bottleneck from `c_in` to `4·width` channels: conv1×1 to `width` → bn → relu →
    /// conv3×3 (stride) → bn → relu → conv1×1 to `4·width` → bn (the stride on the 3×3, as in
    /// torchvision's ResNet v1.5).
    pub fn bottleneck(
        name: &str,
        c_in: usize,
        width: usize,
        stride: usize,
        in_hw: (usize, usize),
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        let out_hw = same_out(in_hw, 3, stride);
        let stages = [
            ("conv1", c_in, width, 1, 1, true, in_hw),
            ("conv2", width, width, 3, stride, true, in_hw),
            ("conv3", width, 4 * width, 1, 1, false, out_hw),
        ];
        let main = Self::main_path(name, &stages, rng_w, rng_b);
        let geometry = (c_in, 4 * width, stride, in_hw);
        Self::new(name, main, geometry, Shortcut::Projection, rng_w, rng_b)
    }

    /// The conv → bn (→ relu) stages of a main path, in order.
    fn main_path(
        name: &str,
        stages: &[Stage],
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Vec<Box<dyn Layer<T>>> {
        stages
            .iter()
            .flat_map(|&(suffix, c_in, c_out, k, s, relu, hw)| {
                let name = format!("{name}.{suffix}");
                conv_bn(&name, c_in, c_out, k, s, relu, hw, rng_w, rng_b)
            })
            .collect()
    }

    /// The block around `main`; `geometry` is `(C_in, C_out, stride, input resolution)`.
    fn new(
        name: &str,
        main: Vec<Box<dyn Layer<T>>>,
        geometry: (usize, usize, usize, (usize, usize)),
        kind: Shortcut,
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        let (c_in, c_out, stride, in_hw) = geometry;
        let changes = stride != 1 || c_in != c_out;
        let shortcut: Vec<Box<dyn Layer<T>>> = if changes && kind == Shortcut::Identity {
            vec![Box::new(SubsamplePad {
                name: format!("{name}.short"),
                stride,
                c_out,
            })]
        } else if changes {
            conv_bn(
                &format!("{name}.short"),
                c_in,
                c_out,
                1,
                stride,
                false,
                in_hw,
                rng_w,
                rng_b,
            )
            .into()
        } else {
            Vec::new()
        };
        Self {
            name: name.to_string(),
            main,
            shortcut,
            main_outs: Vec::new(),
            short_outs: Vec::new(),
        }
    }

    fn parts(&self) -> impl Iterator<Item = &Box<dyn Layer<T>>> {
        self.main.iter().chain(&self.shortcut)
    }
    fn parts_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Layer<T>>> {
        self.main.iter_mut().chain(self.shortcut.iter_mut())
    }
}

impl<T: Real> Layer<T> for Residual<T> {
    fn name(&self) -> &str {
        &self.name
    }

    /// `y = relu(main + shortcut)` in one pass, written over the main path's last output. That
    /// output (a batch norm's) is not kept: batch norm's backward reads only its input, so the
    /// chain gets an empty placeholder in its place, and the ReLU's derivative is read off `y`.
    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        self.main_outs = forward_chain(&mut self.main, x, train);
        self.short_outs = forward_chain(&mut self.shortcut, x, train);
        let mut y = self.main_outs.pop().expect("main path");
        y.zip_apply(self.short_outs.last().unwrap_or(x), |a, b| {
            (a + b).max(T::zero())
        });
        self.main_outs.push(Tensor::default());
        y
    }

    fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        delta: &Tensor<T>,
        ctx: &mut Backward<T>,
        need_delta_in: bool,
    ) -> Option<Tensor<T>> {
        // The forward caches are lent out and put back: backward may run more than once per
        // forward (the δ-angle probe runs the rule and backprop on one forward pass).
        let main_outs = std::mem::take(&mut self.main_outs);
        let short_outs = std::mem::take(&mut self.short_outs);
        // Through the ReLU: δ_sum = δ ⊙ [y > 0].
        let d_sum = delta.zip_map(y, |d, y| if y > T::zero() { d } else { T::zero() });
        let d_main = backward_chain(&mut self.main, x, &main_outs, &d_sum, ctx, need_delta_in);
        let d_short = if self.shortcut.is_empty() {
            need_delta_in.then_some(d_sum)
        } else {
            backward_chain(
                &mut self.shortcut,
                x,
                &short_outs,
                &d_sum,
                ctx,
                need_delta_in,
            )
        };
        self.main_outs = main_outs;
        self.short_outs = short_outs;
        match (d_main, d_short) {
            (Some(mut a), Some(b)) => {
                a.zip_apply(&b, |a, b| a + b);
                Some(a)
            }
            _ => None,
        }
    }

    fn release(&mut self) {
        self.main_outs = Vec::new();
        self.short_outs = Vec::new();
    }

    fn collect_weights<'a>(&'a self, out: &mut Vec<&'a dyn WeightLayer<T>>) {
        self.parts().for_each(|l| l.collect_weights(out));
    }
    fn collect_weights_mut<'a>(&'a mut self, out: &mut Vec<&'a mut dyn WeightLayer<T>>) {
        self.parts_mut().for_each(|l| l.collect_weights_mut(out));
    }
    fn collect_params<'a>(&'a self, out: &mut Vec<&'a Param<T>>) {
        self.parts().for_each(|l| l.collect_params(out));
    }
    fn collect_params_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Param<T>>) {
        self.parts_mut().for_each(|l| l.collect_params_mut(out));
    }
    fn collect_buffers<'a>(&'a self, out: &mut Vec<(String, &'a Tensor<T>)>) {
        self.parts().for_each(|l| l.collect_buffers(out));
    }
    fn collect_buffers_mut<'a>(&'a mut self, out: &mut Vec<(String, &'a mut Tensor<T>)>) {
        self.parts_mut().for_each(|l| l.collect_buffers_mut(out));
    }
}
