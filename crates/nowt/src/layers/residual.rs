//! The residual BasicBlock of He et al. (2016): two 3×3 convolutions with batch norm, and an
//! identity or 1×1 projection shortcut. A composition: every derivative is its parts'.

use super::{
    backward_chain, forward_chain, Activation, ActivationKind, Backward, BatchNorm, Conv2d, Layer,
    Param, WeightLayer,
};
use crate::tensor::{Real, Tensor};

/// `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, shortcut = `x` or
/// `bn(conv1×1(x))` when the stride or the width changes.
pub struct BasicBlock<T> {
    pub name: String,
    /// conv1, bn1, relu, conv2, bn2, in order.
    main: Vec<Box<dyn Layer<T>>>,
    /// 1×1 projection and its batch norm, if any.
    shortcut: Vec<Box<dyn Layer<T>>>,
    relu: Activation,
    /// From the last forward: each main and shortcut layer's output, and the pre-activation sum.
    main_outs: Vec<Tensor<T>>,
    short_outs: Vec<Tensor<T>>,
}

impl<T: Real> BasicBlock<T> {
    /// A block from `c_in` to `c_out` channels at input resolution `in_hw`; He-normal weights.
    pub fn new(
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
        in_hw: (usize, usize),
        rng_w: &mut crate::Rng,
        rng_b: &mut crate::Rng,
    ) -> Self {
        let std = |fan_in: usize| (2.0 / fan_in as f64).sqrt();
        let out_hw = (
            (in_hw.0 + 2 - 3) / stride + 1,
            (in_hw.1 + 2 - 3) / stride + 1,
        );
        let main: Vec<Box<dyn Layer<T>>> = vec![
            Box::new(Conv2d::new(
                &format!("{name}.conv1"),
                c_in,
                c_out,
                3,
                stride,
                1,
                false,
                in_hw,
                std(9 * c_in),
                rng_w,
                rng_b,
            )),
            Box::new(BatchNorm::new(&format!("{name}.bn1"), c_out)),
            Box::new(Activation::new(
                &format!("{name}.relu1"),
                ActivationKind::Relu,
            )),
            Box::new(Conv2d::new(
                &format!("{name}.conv2"),
                c_out,
                c_out,
                3,
                1,
                1,
                false,
                out_hw,
                std(9 * c_out),
                rng_w,
                rng_b,
            )),
            Box::new(BatchNorm::new(&format!("{name}.bn2"), c_out)),
        ];
        let shortcut: Vec<Box<dyn Layer<T>>> = if stride != 1 || c_in != c_out {
            vec![
                Box::new(Conv2d::new(
                    &format!("{name}.short"),
                    c_in,
                    c_out,
                    1,
                    stride,
                    0,
                    false,
                    in_hw,
                    std(c_in),
                    rng_w,
                    rng_b,
                )),
                Box::new(BatchNorm::new(&format!("{name}.short_bn"), c_out)),
            ]
        } else {
            Vec::new()
        };
        Self {
            name: name.to_string(),
            main,
            shortcut,
            relu: Activation::new(&format!("{name}.relu2"), ActivationKind::Relu),
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

impl<T: Real> Layer<T> for BasicBlock<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        self.main_outs = forward_chain(&mut self.main, x, train);
        self.short_outs = forward_chain(&mut self.shortcut, x, train);
        let mut sum = self.main_outs.last().expect("main path").clone();
        sum.zip_apply(self.short_outs.last().unwrap_or(x), |a, b| a + b);
        let y = Layer::<T>::forward(&mut self.relu, &sum, train);
        self.main_outs.push(sum);
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
        let mut main_outs = std::mem::take(&mut self.main_outs);
        let short_outs = std::mem::take(&mut self.short_outs);
        let sum = main_outs.pop().expect("forward ran");
        let d_sum =
            Layer::<T>::backward(&mut self.relu, &sum, y, delta, ctx, true).expect("relu error");
        let d_main = backward_chain(
            &mut self.main,
            x,
            &main_outs,
            d_sum.clone(),
            ctx,
            need_delta_in,
        );
        let d_short = if self.shortcut.is_empty() {
            need_delta_in.then_some(d_sum)
        } else {
            backward_chain(
                &mut self.shortcut,
                x,
                &short_outs,
                d_sum,
                ctx,
                need_delta_in,
            )
        };
        main_outs.push(sum);
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
