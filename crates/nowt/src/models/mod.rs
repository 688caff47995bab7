//! Models: networks as descriptions ([`Description`]), resolved against the data and built
//! into a [`Network`] of layers. No derivative code lives here.

pub mod builtin;
mod describe;

pub use describe::{
    build, build_one, layer_list, weight_shapes, Description, LayerSpec, Part, Shape,
};

use crate::config::ModelKind;
use crate::layers::{
    backward_chain, forward_chain, ActivationKind, Backward, DeltaRecord, Layer, Param, Shortcut,
    WeightLayer,
};
use crate::params::Init;
use crate::rules::{Rule, Top};
use crate::tensor::{Real, Tensor};

/// A built-in model's `description` built for inputs of `image` (flat samples) and `classes`
/// outputs, `W` from `rng_w` and `B` from `rng_b`. Panics if the model cannot take `image` (a
/// programming error: runs resolve their model first,
/// [`crate::config::TrainConfig::model_parts`]).
fn builtin_net<T: Real>(
    description: Description,
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let parts = description
        .resolve(image, classes)
        .unwrap_or_else(|e| panic!("{e}"));
    build(&parts, rng_w, rng_b)
}

/// The MLP `inputs → hidden… → classes` with `act` between linear layers ([`builtin`]).
pub fn mlp<T: Real>(
    inputs: usize,
    hidden: &[usize],
    classes: usize,
    act: ActivationKind,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let d = builtin::describe(ModelKind::Mlp, hidden, act, Shortcut::Projection);
    builtin_net(d, [1, 1, inputs], classes, rng_w, rng_b)
}

/// LeNet-5 for flat inputs holding images of `[C, H, W]` ([`builtin`]).
pub fn lenet5<T: Real>(
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let d = builtin::describe(
        ModelKind::Lenet5,
        &[],
        ActivationKind::Relu,
        Shortcut::Projection,
    );
    builtin_net(d, image, classes, rng_w, rng_b)
}

/// BioTorch's LeNet for flat inputs holding images of `[C, H, W]` ([`builtin`]).
pub fn lenet_biotorch<T: Real>(
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let relu = ActivationKind::Relu;
    let d = builtin::describe(ModelKind::LenetBiotorch, &[], relu, Shortcut::Projection);
    builtin_net(d, image, classes, rng_w, rng_b)
}

/// One ResNet block alone ([`builtin::residual`]) for inputs of `[C_in, H, W]` (`image`).
#[allow(clippy::too_many_arguments)]
pub fn residual_block<T: Real>(
    name: &str,
    image: [usize; 3],
    width: usize,
    stride: usize,
    bottleneck: bool,
    shortcut: Shortcut,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Box<dyn Layer<T>> {
    let spec = builtin::residual(name, image[0], width, stride, bottleneck, shortcut);
    let (parts, _) =
        describe::resolve_layers(&[spec], Shape::Image(image), 0).unwrap_or_else(|e| panic!("{e}"));
    build_one(&parts[0], rng_w, rng_b)
}

/// A CIFAR ResNet of `depth` `6n + 2` ([`builtin`]).
pub fn resnet_cifar<T: Real>(
    depth: usize,
    image: [usize; 3],
    classes: usize,
    shortcut: Shortcut,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let d = Description {
        name: format!("resnet{depth}"),
        layers: builtin::resnet_cifar(depth, shortcut),
    };
    builtin_net(d, image, classes, rng_w, rng_b)
}

/// An ImageNet ResNet of `depth` 18, 34 or 50 ([`builtin`]).
pub fn resnet_imagenet<T: Real>(
    depth: usize,
    image: [usize; 3],
    classes: usize,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    let d = Description {
        name: format!("resnet{depth}"),
        layers: builtin::resnet_imagenet(depth),
    };
    builtin_net(d, image, classes, rng_w, rng_b)
}

/// Draws every weight layer's `W` and `B` again from `init` at its own scale (Xavier-uniform:
/// `√(2 / (fan_in + fan_out))`), bottom to top, `W` from `rng_w` and `B` from `rng_b`; each
/// layer then records the family and scale it was drawn with. Biases stay zero.
pub fn redraw<T: Real>(
    net: &mut Network<T>,
    init: Init,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) {
    for layer in net.weight_layers_mut() {
        let p = layer.params_mut();
        let shape = p.w.shape().to_vec();
        let std = match init {
            Init::He => p.init_std,
            Init::XavierUniform => Init::xavier_std(&shape),
        };
        p.w = init.draw(&shape, std, rng_w);
        p.feedback = init.draw(&shape, std, rng_b);
        p.init_std = std;
        p.init = init;
    }
}

/// A chain of layers, trained with any rule.
pub struct Network<T: Real> {
    pub layers: Vec<Box<dyn Layer<T>>>,
}

impl<T: Real> Network<T> {
    /// Runs every layer; returns each layer's output (the last is the logits).
    pub fn forward(&mut self, x: &Tensor<T>, train: bool) -> Vec<Tensor<T>> {
        forward_chain(&mut self.layers, x, train)
    }

    /// The logits alone, keeping only one activation at a time (evaluation of large batches).
    pub fn predict(&mut self, x: &Tensor<T>, train: bool) -> Tensor<T> {
        let mut h: Option<Tensor<T>> = None;
        for layer in self.layers.iter_mut() {
            let y = layer.forward(h.as_ref().unwrap_or(x), train);
            layer.release();
            h = Some(y);
        }
        h.expect("a network has layers")
    }

    /// Backward through every layer from `delta = ∂loss/∂logits`, with `rule` choosing how the
    /// error crosses each weight layer. Parameter gradients are stored in the layers. `target`
    /// is the target's share of `delta`, `−t/N` ([`crate::layers::target_error`]), for the
    /// rules that broadcast it; `None` where none does.
    ///
    /// If `record` is given, it receives `(name, δ_in)` for each weight layer, top to bottom
    /// (`None` for the first, which computes no `δ_in`: nothing below it needs an error).
    pub fn backward(
        &mut self,
        x: &Tensor<T>,
        outs: &[Tensor<T>],
        delta: Tensor<T>,
        target: Option<&Tensor<T>>,
        rule: &dyn Rule<T>,
        record: Option<&mut DeltaRecord<T>>,
    ) {
        let mut ctx = Backward {
            rule,
            record,
            top: Top {
                error: Some(&delta),
                target,
            },
        };
        if let Some(r) = ctx.record.as_deref_mut() {
            r.clear();
        }
        backward_chain(&mut self.layers, x, outs, &delta, &mut ctx, false);
    }

    /// Where non-finite values first appear: the first layer whose output in `outs` (from
    /// [`Network::forward`]) has one, else the first weight layer whose parameters do.
    pub fn first_non_finite(&self, outs: &[Tensor<T>]) -> Option<String> {
        if let Some(i) = outs.iter().position(|o| !o.all_finite()) {
            return Some(format!("the output of layer {}", self.layers[i].name()));
        }
        self.weight_layers().iter().find_map(|l| {
            let p = l.params();
            let bad = !p.w.all_finite()
                || !p.feedback.all_finite()
                || p.bias.as_ref().is_some_and(|b| !b.all_finite());
            bad.then(|| format!("the parameters of layer {}", p.name))
        })
    }

    /// The weight layers, bottom to top.
    pub fn weight_layers(&self) -> Vec<&dyn WeightLayer<T>> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_weights(&mut out);
        }
        out
    }

    /// Trained parameters outside the rule seam (batch norm's γ and β), bottom to top.
    pub fn params(&self) -> Vec<&Param<T>> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_params(&mut out);
        }
        out
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_params_mut(&mut out);
        }
        out
    }

    /// Untrained state to checkpoint (running statistics), by name.
    pub fn buffers(&self) -> Vec<(String, &Tensor<T>)> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.collect_buffers(&mut out);
        }
        out
    }

    pub fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_buffers_mut(&mut out);
        }
        out
    }

    pub fn weight_layers_mut(&mut self) -> Vec<&mut dyn WeightLayer<T>> {
        let mut out = Vec::new();
        for l in self.layers.iter_mut() {
            l.collect_weights_mut(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ActivationKind;

    /// Small ResNets of every block kind, with odd image sizes (stride-2 stages round up), and
    /// their flat input sizes.
    fn resnets() -> Vec<(&'static str, usize, Network<f32>)> {
        let (mut w, mut b) = (crate::rng(0, 0), crate::rng(0, 1));
        let (cifar, imagenet) = ([3, 10, 10], [3, 33, 33]);
        let flat = |image: [usize; 3]| image.iter().product();
        vec![
            (
                "ResNet-8",
                flat(cifar),
                resnet_cifar(8, cifar, 10, Default::default(), &mut w, &mut b),
            ),
            (
                "ResNet-18",
                flat(imagenet),
                resnet_imagenet(18, imagenet, 10, &mut w, &mut b),
            ),
            (
                "ResNet-50",
                flat(imagenet),
                resnet_imagenet(50, imagenet, 10, &mut w, &mut b),
            ),
        ]
    }

    fn mlp_of(act: ActivationKind) -> Network<f32> {
        mlp(
            64,
            &[48, 32],
            10,
            act,
            &mut crate::rng(0, 0),
            &mut crate::rng(0, 1),
        )
    }

    fn names(net: &Network<f32>) -> Vec<&str> {
        net.layers.iter().map(|l| l.name()).collect()
    }

    /// Every layer's name, as divergence messages ([`Network::first_non_finite`]) give it.
    #[test]
    fn layers_have_their_names() {
        let relu = mlp_of(ActivationKind::Relu);
        assert_eq!(names(&relu), ["fc1", "relu1", "fc2", "relu2", "fc3"]);
        assert_eq!(names(&mlp_of(ActivationKind::Tanh))[1], "tanh1");
        assert_eq!(names(&mlp_of(ActivationKind::Sigmoid))[3], "sigmoid2");
        let (mut w, mut b) = (crate::rng(0, 0), crate::rng(0, 1));
        let lenet = lenet5::<f32>([1, 28, 28], 10, &mut w, &mut b);
        let front = [
            "image", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
        ];
        assert_eq!(names(&lenet)[..8], front);
        let nets = resnets();
        let cifar = [
            "image", "stem", "stem_bn", "layer1.0", "layer2.0", "layer3.0", "pool", "fc",
        ];
        assert_eq!(names(&nets[0].2), cifar);
        assert_eq!(names(&nets[1].2)[3..5], ["stem_pool", "layer1.0"]);
    }

    /// Each convolution is built for the planes a forward pass brings it (what the weight
    /// mirror's noise and per-tap counts use before the first batch).
    #[test]
    fn convolutions_are_built_for_the_planes_they_see() {
        for (name, inputs, mut net) in resnets() {
            let shapes = |net: &Network<f32>| -> Vec<Vec<usize>> {
                net.weight_layers()
                    .iter()
                    .map(|l| l.input_shape(2))
                    .collect()
            };
            let built = shapes(&net);
            net.forward(&Tensor::zeros(&[2, inputs]), false);
            assert_eq!(built, shapes(&net), "{name}");
        }
    }

    /// The optimiser and checkpoints reach every batch norm's `γ`, `β` and running statistics:
    /// one `<conv>_bn` after each convolution, stem, main paths and projection shortcuts.
    #[test]
    fn every_batch_norm_is_trained_and_checkpointed() {
        for (name, _, mut net) in resnets() {
            let convs: Vec<String> = net
                .weight_layers()
                .iter()
                .filter(|l| l.params().w.shape().len() == 4)
                .map(|l| l.params().name.clone())
                .collect();
            let want = |what: [&str; 2]| -> Vec<String> {
                convs
                    .iter()
                    .flat_map(|c| what.map(|s| format!("{c}_bn.{s}")))
                    .collect()
            };
            let params: Vec<String> = net.params().iter().map(|p| p.name.clone()).collect();
            assert_eq!(params, want(["gamma", "beta"]), "{name}");
            let params_mut: Vec<String> = net.params_mut().iter().map(|p| p.name.clone()).collect();
            assert_eq!(params_mut, params, "{name}");
            let buffers: Vec<String> = net.buffers().into_iter().map(|b| b.0).collect();
            assert_eq!(buffers, want(["running_mean", "running_var"]), "{name}");
            let buffers_mut: Vec<String> = net.buffers_mut().into_iter().map(|b| b.0).collect();
            assert_eq!(buffers_mut, buffers, "{name}");
        }
    }

    /// Weights start at their documented scale: `N(0, 2/(k² C_in))` (He) for every convolution
    /// of a ResNet, `N(0, gain²/fan_in)` for an MLP (gain √2 for ReLU, 1 for tanh and sigmoid).
    /// Each layer's sample standard deviation within 15 % (≥ 320 weights: about 4 σ).
    #[test]
    fn weights_start_at_their_init_scale() {
        let check = |net: &Network<f32>, gain: f64, what: &str| {
            for l in net.weight_layers() {
                let w = &l.params().w;
                let fan_in: usize = w.shape()[1..].iter().product();
                let want = gain / (fan_in as f64).sqrt();
                let got = w.norm() / (w.len() as f64).sqrt();
                assert!(
                    (got / want - 1.0).abs() < 0.15,
                    "{what} {}: std {got}, want {want}",
                    l.params().name
                );
            }
        };
        for (name, _, net) in resnets() {
            check(&net, 2f64.sqrt(), name);
        }
        check(&mlp_of(ActivationKind::Relu), 2f64.sqrt(), "ReLU MLP");
        check(&mlp_of(ActivationKind::Tanh), 1.0, "tanh MLP");
    }
}
