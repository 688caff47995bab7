//! Networks as descriptions: a list of layers, read from a config file's `[model]` table (or a
//! list of dicts from Python), checked against the data's shape, then built. Every built-in
//! network is one of these ([`super::builtin`]); a user's is built the same way, and every
//! weight layer in it crosses the rule seam (DESIGN.md §3) like a built-in one's.
//!
//! ```toml
//! [model]
//! name = "mlp-tanh"
//! [[model.layers]]
//! kind = "linear"
//! out = 512
//! [[model.layers]]
//! kind = "tanh"
//! [[model.layers]]
//! kind = "linear"          # `out` left out: the dataset's classes
//! ```
//!
//! A description is resolved ([`Description::resolve`]) against the input's shape and the
//! number of classes into [`Part`]s — every size known, every layer named, nothing allocated —
//! so a description that cannot work is refused before anything is built, with the layer and the
//! shapes named; then the parts are built ([`build`]) in order, drawing `W` and `B` from their
//! streams as they go.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Network;
use crate::layers::{
    Activation, ActivationKind, BatchNorm, Conv2d, GlobalAvgPool, Layer, Linear, Pool2d, PoolKind,
    Reshape, Residual, SubsamplePad,
};
use crate::tensor::Real;
use crate::{Error, Result};

/// The most sizes a layer may ask for: any one size, and a weight's element count.
const MAX_SIZE: usize = 1 << 20;
const MAX_WEIGHTS: usize = 1 << 30;

/// A network: its name (for reports and run directories) and its layers, bottom to top.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// Letters, digits, `-`, `_` and `.`. Default `custom`.
    #[serde(default = "custom")]
    pub name: String,
    #[serde(deserialize_with = "layer_list")]
    pub layers: Vec<LayerSpec>,
}

fn custom() -> String {
    "custom".into()
}

/// One layer of a description. Every kind takes an optional `name`; by default layers are
/// numbered by kind (`conv1`, `fc2`, `relu3`, `pool1`), a batch norm is named after the weight
/// layer before it (`conv2_bn`), and inside a residual block every name is prefixed by the
/// block's (`block1.conv1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `y = x Wᵀ + b` on flat inputs, `W: [out, in]`. `out` defaults to the dataset's classes;
    /// `W₀ ~ N(0, σ²)` with `σ = gain / √in`, or He's `√(2 / in)` when `gain` is not given.
    Linear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gain: Option<f64>,
    },
    /// A `kernel × kernel` convolution to `out` channels (`W: [out, C, k, k]`), stride 1 and no
    /// padding by default, with a bias unless `bias = false`; `W₀` as `linear` with
    /// `in = C·k²`.
    Conv {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        out: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gain: Option<f64>,
    },
    /// Batch normalisation per channel (per feature on flat inputs), with a ReLU fused into it
    /// when `relu = true`.
    BatchNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default)]
        relu: bool,
    },
    Relu {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Tanh {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Sigmoid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The maximum over `kernel × kernel` windows, `stride` apart (default: `kernel`).
    MaxPool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    /// The mean over windows, as `max_pool`.
    AvgPool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    /// Each channel's mean over its plane: `[C, H, W] → [C]`.
    GlobalAvgPool {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// `[C, H, W] → [C·H·W]`, what a `linear` after convolutions needs.
    Flatten {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// `y = relu(body(x) + shortcut(x))` (He et al. 2016); an empty `shortcut` (the default) is
    /// the identity. Both branches must give the same shape.
    Residual {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(deserialize_with = "layer_list")]
        body: Vec<LayerSpec>,
        #[serde(
            default,
            deserialize_with = "layer_list",
            skip_serializing_if = "Vec::is_empty"
        )]
        shortcut: Vec<LayerSpec>,
    },
    /// He et al.'s option-A shortcut: `x[:, :, ::stride, ::stride]` with zero channels added on
    /// both sides up to `out` channels; no parameters.
    SubsamplePad {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        stride: usize,
        out: usize,
    },
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// A list of layers whose errors say which layer (counting from 1) they are in.
pub fn layer_list<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<LayerSpec>, D::Error> {
    struct Layers;
    impl<'de> Visitor<'de> for Layers {
        type Value = Vec<LayerSpec>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of layers")
        }
        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            loop {
                match seq.next_element::<LayerSpec>() {
                    Ok(Some(l)) => out.push(l),
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        return Err(de::Error::custom(format!("layer {}: {e}", out.len() + 1)))
                    }
                }
            }
        }
    }
    d.deserialize_seq(Layers)
}

/// What flows between layers, per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Flat(usize),
    Image([usize; 3]),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Shape::Flat(d) => write!(f, "[{d}]"),
            Shape::Image([c, h, w]) => write!(f, "[{c}, {h}, {w}]"),
        }
    }
}

/// A resolved layer: every size known and every name given; nothing allocated.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// The flat input viewed as an image, or an image flattened.
    Reshape {
        name: String,
        shape: Vec<usize>,
    },
    Linear {
        name: String,
        inputs: usize,
        outputs: usize,
        std: f64,
    },
    Conv {
        name: String,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
        hw: (usize, usize),
        std: f64,
    },
    BatchNorm {
        name: String,
        channels: usize,
        relu: bool,
    },
    Activation {
        name: String,
        kind: ActivationKind,
    },
    Pool {
        name: String,
        kind: PoolKind,
        k: usize,
        stride: usize,
        pad: usize,
    },
    GlobalAvgPool {
        name: String,
    },
    Residual {
        name: String,
        body: Vec<Part>,
        shortcut: Vec<Part>,
    },
    SubsamplePad {
        name: String,
        stride: usize,
        c_out: usize,
    },
}

impl Part {
    fn name(&self) -> &str {
        match self {
            Part::Reshape { name, .. }
            | Part::Linear { name, .. }
            | Part::Conv { name, .. }
            | Part::BatchNorm { name, .. }
            | Part::Activation { name, .. }
            | Part::Pool { name, .. }
            | Part::GlobalAvgPool { name }
            | Part::Residual { name, .. }
            | Part::SubsamplePad { name, .. } => name,
        }
    }

    /// Appends `(name, W's shape)` for every weight layer in the part, bottom to top.
    fn weights(&self, out: &mut Vec<(String, Vec<usize>)>) {
        match self {
            Part::Linear {
                name,
                inputs,
                outputs,
                ..
            } => out.push((name.clone(), vec![*outputs, *inputs])),
            Part::Conv {
                name,
                c_in,
                c_out,
                k,
                ..
            } => out.push((name.clone(), vec![*c_out, *c_in, *k, *k])),
            Part::Residual { body, shortcut, .. } => {
                body.iter().chain(shortcut).for_each(|p| p.weights(out))
            }
            _ => {}
        }
    }

    /// The layer, its `W` drawn from `rng_w` and `B` from `rng_b` (a block's body first, then
    /// its shortcut).
    fn build<T: Real>(&self, rng_w: &mut crate::Rng, rng_b: &mut crate::Rng) -> Box<dyn Layer<T>> {
        match self.clone() {
            Part::Reshape { name, shape } => Box::new(Reshape { name, shape }),
            Part::Linear {
                name,
                inputs,
                outputs,
                std,
            } => Box::new(Linear::new(&name, inputs, outputs, std, rng_w, rng_b)),
            Part::Conv {
                name,
                c_in,
                c_out,
                k,
                stride,
                pad,
                bias,
                hw,
                std,
            } => Box::new(Conv2d::new(
                &name, c_in, c_out, k, stride, pad, bias, hw, std, rng_w, rng_b,
            )),
            Part::BatchNorm {
                name,
                channels,
                relu: true,
            } => Box::new(BatchNorm::with_relu(&name, channels)),
            Part::BatchNorm {
                name,
                channels,
                relu: false,
            } => Box::new(BatchNorm::new(&name, channels)),
            Part::Activation { name, kind } => Box::new(Activation::new(&name, kind)),
            Part::Pool {
                name,
                kind,
                k,
                stride,
                pad,
            } => Box::new(Pool2d::new(&name, kind, k, stride, pad)),
            Part::GlobalAvgPool { name } => Box::new(GlobalAvgPool { name }),
            Part::Residual {
                name,
                body,
                shortcut,
            } => {
                let body = build_all(&body, rng_w, rng_b);
                let shortcut = build_all(&shortcut, rng_w, rng_b);
                Box::new(Residual::from_parts(&name, body, shortcut))
            }
            Part::SubsamplePad {
                name,
                stride,
                c_out,
            } => Box::new(SubsamplePad {
                name,
                stride,
                c_out,
            }),
        }
    }
}

/// Builds one resolved part.
pub fn build_one<T: Real>(
    part: &Part,
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Box<dyn Layer<T>> {
    part.build(rng_w, rng_b)
}

fn build_all<T: Real>(
    parts: &[Part],
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Vec<Box<dyn Layer<T>>> {
    parts.iter().map(|p| p.build(rng_w, rng_b)).collect()
}

/// Builds resolved `parts` into a network, `W` from `rng_w` and `B` from `rng_b`, bottom to top.
pub fn build<T: Real>(
    parts: &[Part],
    rng_w: &mut crate::Rng,
    rng_b: &mut crate::Rng,
) -> Network<T> {
    Network {
        layers: build_all(parts, rng_w, rng_b),
    }
}

/// `(name, W's shape)` of every weight layer of `parts`, bottom to top.
pub fn weight_shapes(parts: &[Part]) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    parts.iter().for_each(|p| p.weights(&mut out));
    out
}

/// A refusal naming the layer.
fn refuse(layer: &str, what: String) -> Error {
    Error::config("model", format!("layer {layer}: {what}"))
}

/// Per-kind counters and the last weight layer's name, for default names; one per list of
/// layers (a residual block numbers its own).
#[derive(Default)]
struct Names {
    prefix: String,
    counts: std::collections::HashMap<&'static str, usize>,
    last_weight: Option<String>,
}

impl Names {
    fn within(block: &str) -> Self {
        Self {
            prefix: format!("{block}."),
            ..Default::default()
        }
    }

    /// `given` under the block's prefix, or `{stem}{n}` with `n` counting this stem.
    fn name(&mut self, given: &Option<String>, stem: &'static str) -> String {
        let n = self.counts.entry(stem).or_insert(0);
        *n += 1;
        let own = given.clone().unwrap_or_else(|| format!("{stem}{n}"));
        format!("{}{own}", self.prefix)
    }
}

impl Description {
    /// The description as a TOML file that `--model FILE` reads back: `name`, then one
    /// `[[layers]]` table per layer (a block's as `[[layers.body]]` and `[[layers.shortcut]]`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a description serialises")
    }

    /// Resolves the description for inputs of `input` (flat samples holding `[C, H, W]` images)
    /// and `classes` outputs: every layer's sizes and name, or a refusal naming the layer and
    /// the shapes. An image reshape (`image`) is put first when the first layer needs images.
    pub fn resolve(&self, input: [usize; 3], classes: usize) -> Result<Vec<Part>> {
        check_name(&self.name)?;
        if self.layers.is_empty() {
            return Err(Error::config(
                "model",
                "a described model needs at least one layer".to_string(),
            ));
        }
        let flat = Shape::Flat(input.iter().product());
        let mut parts = Vec::new();
        let mut shape = flat;
        if needs_image(&self.layers[0]) {
            parts.push(Part::Reshape {
                name: "image".into(),
                shape: input.to_vec(),
            });
            shape = Shape::Image(input);
        }
        let ctx = Ctx { classes };
        shape = ctx.chain(&self.layers, shape, &mut Names::default(), &mut parts)?;
        if shape != Shape::Flat(classes) {
            let last = parts.last().map_or("", |p| p.name()).to_string();
            return Err(refuse(
                &last,
                format!(
                    "the network ends in {shape}, but the dataset has {classes} classes: end in a linear layer (its out left unset gives {classes})"
                ),
            ));
        }
        unique_names(&parts)?;
        Ok(parts)
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "model.name",
            format!("{name:?}: a model's name is letters, digits, '-', '_' and '.'"),
        ))
    }
}

/// Whether `layer` reads images (so a flat input must be viewed as one first).
fn needs_image(layer: &LayerSpec) -> bool {
    !matches!(
        layer,
        LayerSpec::Linear { .. }
            | LayerSpec::Relu { .. }
            | LayerSpec::Tanh { .. }
            | LayerSpec::Sigmoid { .. }
            | LayerSpec::BatchNorm { .. }
            | LayerSpec::Flatten { .. }
    )
}

/// Refuses a second layer of the same name (checkpoints and records key on names).
fn unique_names(parts: &[Part]) -> Result<()> {
    fn walk<'a>(parts: &'a [Part], seen: &mut HashSet<&'a str>) -> Result<()> {
        for p in parts {
            if !seen.insert(p.name()) {
                return Err(refuse(p.name(), "the name is used twice".into()));
            }
            if let Part::Residual { body, shortcut, .. } = p {
                walk(body, seen)?;
                walk(shortcut, seen)?;
            }
        }
        Ok(())
    }
    walk(parts, &mut HashSet::new())
}

/// Resolves `layers` alone from per-sample `shape` (a block on its own, for tests): their parts
/// and the shape they end in. `classes` is what a `linear` without `out` gives.
pub fn resolve_layers(
    layers: &[LayerSpec],
    shape: Shape,
    classes: usize,
) -> Result<(Vec<Part>, Shape)> {
    let mut parts = Vec::new();
    let out = Ctx { classes }.chain(layers, shape, &mut Names::default(), &mut parts)?;
    unique_names(&parts)?;
    Ok((parts, out))
}

/// What resolving needs besides the layers.
struct Ctx {
    classes: usize,
}

impl Ctx {
    /// Resolves `layers` in order from `shape`, appending to `parts`; returns the last shape.
    fn chain(
        &self,
        layers: &[LayerSpec],
        mut shape: Shape,
        names: &mut Names,
        parts: &mut Vec<Part>,
    ) -> Result<Shape> {
        for l in layers {
            let (part, out) = self.one(l, shape, names)?;
            if let Part::Linear { name, .. } | Part::Conv { name, .. } = &part {
                names.last_weight = Some(name.clone());
            }
            parts.push(part);
            shape = out;
        }
        Ok(shape)
    }

    /// One layer from `shape`: its part and its output shape.
    fn one(&self, l: &LayerSpec, shape: Shape, names: &mut Names) -> Result<(Part, Shape)> {
        match l {
            LayerSpec::Linear { name, out, gain } => {
                let name = names.name(name, "fc");
                let Shape::Flat(inputs) = shape else {
                    return Err(refuse(&name, format!("a linear layer needs flat inputs, got {shape}: put a flatten or global_avg_pool before it")));
                };
                let outputs = out.unwrap_or(self.classes);
                size(&name, "out", outputs)?;
                weights(&name, &[outputs, inputs])?;
                let std = init_std(inputs, *gain);
                Ok((
                    Part::Linear {
                        name,
                        inputs,
                        outputs,
                        std,
                    },
                    Shape::Flat(outputs),
                ))
            }
            LayerSpec::Conv {
                name,
                out,
                kernel,
                stride,
                padding,
                bias,
                gain,
            } => {
                let name = names.name(name, "conv");
                let [c, h, w] = image(&name, "a convolution", shape)?;
                size(&name, "out", *out)?;
                size(&name, "kernel", *kernel)?;
                size(&name, "stride", *stride)?;
                let (ho, wo) = (
                    window_out(&name, h, *kernel, *stride, *padding)?,
                    window_out(&name, w, *kernel, *stride, *padding)?,
                );
                weights(&name, &[*out, c, *kernel, *kernel])?;
                let part = Part::Conv {
                    std: init_std(c * kernel * kernel, *gain),
                    name,
                    c_in: c,
                    c_out: *out,
                    k: *kernel,
                    stride: *stride,
                    pad: *padding,
                    bias: *bias,
                    hw: (h, w),
                };
                Ok((part, Shape::Image([*out, ho, wo])))
            }
            LayerSpec::BatchNorm { name, relu } => {
                let name = match name {
                    Some(_) => names.name(name, "bn"),
                    None => match names.last_weight.clone() {
                        Some(w) => format!("{w}_bn"),
                        None => names.name(name, "bn"),
                    },
                };
                let channels = match shape {
                    Shape::Flat(d) => d,
                    Shape::Image([c, ..]) => c,
                };
                Ok((
                    Part::BatchNorm {
                        name,
                        channels,
                        relu: *relu,
                    },
                    shape,
                ))
            }
            LayerSpec::Relu { name } => Ok((
                activation(names.name(name, "relu"), ActivationKind::Relu),
                shape,
            )),
            LayerSpec::Tanh { name } => Ok((
                activation(names.name(name, "tanh"), ActivationKind::Tanh),
                shape,
            )),
            LayerSpec::Sigmoid { name } => Ok((
                activation(names.name(name, "sigmoid"), ActivationKind::Sigmoid),
                shape,
            )),
            LayerSpec::MaxPool {
                name,
                kernel,
                stride,
                padding,
            } => pool(
                names.name(name, "pool"),
                PoolKind::Max,
                *kernel,
                *stride,
                *padding,
                shape,
            ),
            LayerSpec::AvgPool {
                name,
                kernel,
                stride,
                padding,
            } => pool(
                names.name(name, "pool"),
                PoolKind::Avg,
                *kernel,
                *stride,
                *padding,
                shape,
            ),
            LayerSpec::GlobalAvgPool { name } => {
                let name = names.name(name, "pool");
                let [c, ..] = image(&name, "global average pooling", shape)?;
                Ok((Part::GlobalAvgPool { name }, Shape::Flat(c)))
            }
            LayerSpec::Flatten { name } => {
                let name = match name {
                    Some(_) => names.name(name, "flatten"),
                    None => format!("{}flatten", names.prefix),
                };
                let features = match shape {
                    Shape::Flat(d) => d,
                    Shape::Image(s) => s.iter().product(),
                };
                Ok((
                    Part::Reshape {
                        name,
                        shape: vec![features],
                    },
                    Shape::Flat(features),
                ))
            }
            LayerSpec::Residual {
                name,
                body,
                shortcut,
            } => self.residual(names.name(name, "block"), body, shortcut, shape),
            LayerSpec::SubsamplePad { name, stride, out } => {
                let name = names.name(name, "subsample");
                let [c, h, w] = image(&name, "subsample_pad", shape)?;
                size(&name, "stride", *stride)?;
                if *out < c {
                    return Err(refuse(
                        &name,
                        format!("out = {out} is fewer than its input's {c} channels ({shape})"),
                    ));
                }
                let part = Part::SubsamplePad {
                    name,
                    stride: *stride,
                    c_out: *out,
                };
                Ok((
                    part,
                    Shape::Image([*out, (h - 1) / stride + 1, (w - 1) / stride + 1]),
                ))
            }
        }
    }

    /// A residual block: both branches from `shape`, which must end in the same shape.
    fn residual(
        &self,
        name: String,
        body: &[LayerSpec],
        shortcut: &[LayerSpec],
        shape: Shape,
    ) -> Result<(Part, Shape)> {
        if body.is_empty() {
            return Err(refuse(
                &name,
                "a residual block needs a body of at least one layer".into(),
            ));
        }
        let (mut b, mut s) = (Vec::new(), Vec::new());
        // One numbering for both branches: a shortcut's convolution follows the body's.
        let names = &mut Names::within(&name);
        let body_out = self.chain(body, shape, names, &mut b)?;
        let short_out = self.chain(shortcut, shape, names, &mut s)?;
        if body_out != short_out {
            let what = if shortcut.is_empty() {
                "the identity shortcut"
            } else {
                "the shortcut"
            };
            return Err(refuse(
                &name,
                format!("its body gives {body_out} but {what} gives {short_out}: the branches must add (give a shortcut that maps {shape} to {body_out}, e.g. a 1×1 conv with the body's stride)"),
            ));
        }
        Ok((
            Part::Residual {
                name,
                body: b,
                shortcut: s,
            },
            body_out,
        ))
    }
}

fn activation(name: String, kind: ActivationKind) -> Part {
    Part::Activation { name, kind }
}

fn pool(
    name: String,
    kind: PoolKind,
    k: usize,
    stride: Option<usize>,
    pad: usize,
    shape: Shape,
) -> Result<(Part, Shape)> {
    let [c, h, w] = image(&name, "pooling", shape)?;
    let stride = stride.unwrap_or(k);
    size(&name, "kernel", k)?;
    size(&name, "stride", stride)?;
    if pad >= k {
        return Err(refuse(
            &name,
            format!("padding {pad} must be less than the kernel {k}"),
        ));
    }
    let (ho, wo) = (
        window_out(&name, h, k, stride, pad)?,
        window_out(&name, w, k, stride, pad)?,
    );
    Ok((
        Part::Pool {
            name,
            kind,
            k,
            stride,
            pad,
        },
        Shape::Image([c, ho, wo]),
    ))
}

/// `shape` as an image, or a refusal saying `what` needs one.
fn image(name: &str, what: &str, shape: Shape) -> Result<[usize; 3]> {
    match shape {
        Shape::Image(s) => Ok(s),
        Shape::Flat(_) => Err(refuse(
            name,
            format!("{what} needs images [C, H, W], got {shape}"),
        )),
    }
}

/// A size key that must be positive and plausible.
fn size(name: &str, key: &str, v: usize) -> Result<()> {
    if v == 0 || v > MAX_SIZE {
        return Err(refuse(
            name,
            format!("{key} = {v} must be from 1 to {MAX_SIZE}"),
        ));
    }
    Ok(())
}

fn weights(name: &str, shape: &[usize]) -> Result<()> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_WEIGHTS => Ok(()),
        _ => Err(refuse(
            name,
            format!("a weight of shape {shape:?} is more than nowt holds ({MAX_WEIGHTS} values)"),
        )),
    }
}

/// Outputs along one side of `n` inputs under a `k` window, `stride` apart, `pad` each side.
fn window_out(name: &str, n: usize, k: usize, stride: usize, pad: usize) -> Result<usize> {
    if n + 2 * pad < k {
        return Err(refuse(
            name,
            format!("its {k}×{k} window does not fit inputs of side {n} with padding {pad}"),
        ));
    }
    Ok((n + 2 * pad - k) / stride + 1)
}

/// `W₀`'s standard deviation for `fan_in` inputs: `gain / √fan_in`, or He's `√(2 / fan_in)`.
fn init_std(fan_in: usize, gain: Option<f64>) -> f64 {
    match gain {
        Some(g) => g / (fan_in as f64).sqrt(),
        None => (2.0 / fan_in as f64).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelKind;
    use crate::layers::Shortcut;

    fn parse(text: &str) -> std::result::Result<Description, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    /// `layers` (TOML `[[layers]]` tables) resolved for 3×8×8 images and 10 classes.
    fn resolve(layers: &str) -> std::result::Result<Vec<Part>, String> {
        let d = parse(layers)?;
        d.resolve([3, 8, 8], 10).map_err(|e| e.to_string())
    }

    fn names(parts: &[Part]) -> Vec<String> {
        let mut out = Vec::new();
        for p in parts {
            out.push(p.name().to_string());
            if let Part::Residual { body, shortcut, .. } = p {
                out.extend(names(body));
                out.extend(names(shortcut));
            }
        }
        out
    }

    const CONV: &str = "[[layers]]\nkind = \"conv\"\nout = 4\nkernel = 3\npadding = 1\n";
    const FLAT: &str = "[[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\n";

    /// Layers are numbered by kind, a batch norm takes the weight layer's name before it, a
    /// block's names (both branches, one numbering) are prefixed by the block's, an image
    /// reshape comes first, and given names are kept.
    #[test]
    fn layers_get_their_default_names() {
        let text = format!(
            "{CONV}[[layers]]\nkind = \"batch_norm\"\n[[layers]]\nkind = \"relu\"\n\
             [[layers]]\nkind = \"residual\"\n[[layers.body]]\nkind = \"conv\"\nout = 4\nkernel = 1\n\
             [[layers.body]]\nkind = \"batch_norm\"\n[[layers.shortcut]]\nkind = \"conv\"\nout = 4\nkernel = 1\n\
             [[layers]]\nkind = \"max_pool\"\nkernel = 2\n{CONV}[[layers]]\nkind = \"relu\"\nname = \"last\"\n{FLAT}"
        );
        let parts = resolve(&text).unwrap();
        let want = [
            "image",
            "conv1",
            "conv1_bn",
            "relu1",
            "block1",
            "block1.conv1",
            "block1.conv1_bn",
            "block1.conv2",
            "pool1",
            "conv2",
            "last",
            "flatten",
            "fc1",
        ];
        assert_eq!(names(&parts), want);
        assert_eq!(
            weight_shapes(&parts).last().unwrap(),
            &("fc1".to_string(), vec![10, 64])
        );
    }

    /// A description that cannot work is refused with the layer, and the shapes, named.
    #[test]
    fn refusals_name_the_layer_and_the_shapes() {
        let block = "[[layers]]\nkind = \"residual\"\n[[layers.body]]\nkind = \"conv\"\nout = 6\nkernel = 3\nstride = 2\npadding = 1\n";
        let cases: [(String, &str); 11] = [
            (
                format!("{CONV}[[layers]]\nkind = \"linear\"\n"),
                "layer fc1: a linear layer needs flat inputs, got [4, 8, 8]: put a flatten",
            ),
            (
                format!("{block}{FLAT}"),
                "layer block1: its body gives [6, 4, 4] but the identity shortcut gives [3, 8, 8]",
            ),
            (
                format!("{CONV}[[layers]]\nkind = \"convolution\"\n"),
                "layer 2: unknown variant `convolution`",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout = 4\nkernal = 3\n".into(),
                "layer 1: unknown field `kernal`",
            ),
            (
                format!("{block}[[layers.body]]\nkind = \"relu\"\nsize = 2\n"),
                "layer 1: layer 2: unknown field `size`",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout = 0\nkernel = 3\n".into(),
                "layer conv1: out = 0 must be from 1",
            ),
            (
                "[[layers]]\nkind = \"conv\"\nout = 4\nkernel = 9\n".into(),
                "layer conv1: its 9×9 window does not fit inputs of side 8 with padding 0",
            ),
            (
                format!(
                    "{FLAT}[[layers]]\nkind = \"tanh\"\n[[layers]]\nkind = \"linear\"\nout = 7\n"
                ),
                "layer fc2: the network ends in [7], but the dataset has 10 classes",
            ),
            (
                format!("{CONV}{CONV}[[layers]]\nkind = \"relu\"\nname = \"conv2\"\n{FLAT}"),
                "layer conv2: the name is used twice",
            ),
            (
                "layers = []".into(),
                "a described model needs at least one layer",
            ),
            (
                format!("name = \"my net\"\n{FLAT}"),
                "\"my net\": a model's name is letters, digits",
            ),
        ];
        for (text, want) in cases {
            let got = resolve(&text).unwrap_err();
            assert!(got.contains(want), "{want:?} not in {got:?}\n{text}");
        }
    }

    /// What `nowt models --show` prints reads back as the same description, for every built-in
    /// model (and both CIFAR shortcuts): the printed file is a starting point that works.
    #[test]
    fn builtin_descriptions_read_back_as_printed() {
        for kind in ModelKind::ALL {
            for shortcut in [Shortcut::Projection, Shortcut::Identity] {
                let relu = crate::layers::ActivationKind::Relu;
                let d = crate::models::builtin::describe(kind, &[32, 16], relu, shortcut);
                assert_eq!(parse(&d.to_toml()).unwrap(), d, "{kind:?}");
            }
        }
    }
}
