//! The residual block of He et al. (2016), `y = relu(main(x) + shortcut(x))`, around any main
//! path and shortcut (the built-in BasicBlock and Bottleneck are descriptions,
//! [`crate::models::builtin`]). One composition: every derivative is its parts'.

use serde::{Deserialize, Serialize};

use super::{backward_chain, forward_chain, Backward, Layer, Param, WeightLayer};
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

/// `y = relu(main(x) + shortcut(x))`: `main` a chain of layers (in the ResNets conv → bn (→
/// relu) stages ending in a batch norm), the shortcut `x` itself, or a chain (in the ResNets,
/// where the stride or the width changes, `bn(conv1×1(x))` ([`Shortcut::Projection`]) or `x`
/// subsampled and zero-padded ([`Shortcut::Identity`])).
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

impl<T: Real> Residual<T> {
    /// The block `name` around a main path (non-empty; where its last layer's backward does not
    /// read that layer's output, the sum is written over it, see `forward`) and a shortcut
    /// (empty: the identity). The branches' output shapes must agree
    /// ([`crate::models::Description::resolve`] checks).
    pub fn from_parts(
        name: &str,
        main: Vec<Box<dyn Layer<T>>>,
        shortcut: Vec<Box<dyn Layer<T>>>,
    ) -> Self {
        assert!(
            !main.is_empty(),
            "{name}: a residual block needs a main path"
        );
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

    /// `y = relu(main + shortcut)` in one pass, written over the main path's last output where
    /// that layer's backward does not read it ([`Layer::reads_output`]: a batch norm's, a
    /// convolution's): the chain then gets an empty placeholder in its place, and the ReLU's
    /// derivative is read off `y`. Otherwise the sum is a new tensor.
    fn forward(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        self.main_outs = forward_chain(&mut self.main, x, train);
        self.short_outs = forward_chain(&mut self.shortcut, x, train);
        let keep = self.main.last().is_some_and(|l| l.reads_output());
        let mut y = if keep {
            self.main_outs.last().expect("main path").clone()
        } else {
            let y = self.main_outs.pop().expect("main path");
            self.main_outs.push(Tensor::default());
            y
        };
        y.zip_apply(self.short_outs.last().unwrap_or(x), |a, b| {
            (a + b).max(T::zero())
        });
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
