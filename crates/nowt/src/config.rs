//! Everything a training run needs, with defaults. The CLI fills it from a TOML file and flags
//! and writes the resolved copy into the run directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::DatasetKind;
use crate::layers::{ActivationKind, Shortcut};
use crate::models::{Description, Part};
use crate::optim::{Adam, Optimizer, OptimizerKind, ScheduleKind, Sgd};
use crate::params::Init;
use crate::rules::{MirrorNoise, OutputLayerRule, RuleConfig, RuleKind};
use crate::{Error, Result};

/// The network architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Fully connected: `inputs → hidden… → classes`.
    Mlp,
    /// LeNet-5-style CNN (two 5×5 convolutions with max pooling, three linear layers).
    Lenet5,
    /// BioTorch's LeNet for 32×32 inputs (three unpadded 5×5 convolutions, the third to 120
    /// channels, two linear layers; `image_size = 32` resizes (Fashion-)MNIST as BioTorch does).
    LenetBiotorch,
    /// CIFAR ResNet-20 (He et al. 2016 §4.2).
    Resnet20,
    /// CIFAR ResNet-32.
    Resnet32,
    /// CIFAR ResNet-56.
    Resnet56,
    /// ImageNet ResNet-18 (He et al. 2016 Table 1).
    Resnet18,
    /// ImageNet ResNet-34.
    Resnet34,
    /// ImageNet ResNet-50 (Bottleneck blocks).
    Resnet50,
}

impl ModelKind {
    pub const ALL: [ModelKind; 9] = [
        ModelKind::Mlp,
        ModelKind::Lenet5,
        ModelKind::LenetBiotorch,
        ModelKind::Resnet20,
        ModelKind::Resnet32,
        ModelKind::Resnet56,
        ModelKind::Resnet18,
        ModelKind::Resnet34,
        ModelKind::Resnet50,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Lenet5 => "lenet5",
            ModelKind::LenetBiotorch => "lenet-biotorch",
            ModelKind::Resnet20 => "resnet20",
            ModelKind::Resnet32 => "resnet32",
            ModelKind::Resnet56 => "resnet56",
            ModelKind::Resnet18 => "resnet18",
            ModelKind::Resnet34 => "resnet34",
            ModelKind::Resnet50 => "resnet50",
        }
    }
    /// One line on what the model is.
    pub fn summary(self) -> &'static str {
        match self {
            ModelKind::Mlp => "fully connected: inputs → hidden… → classes (keys hidden, activation)",
            ModelKind::Lenet5 => "LeNet-5: two 5×5 convolutions with max pooling, three linear layers",
            ModelKind::LenetBiotorch => "BioTorch's LeNet for 32×32 inputs: three unpadded 5×5 convolutions, two linear layers",
            ModelKind::Resnet20 => "CIFAR ResNet-20 (He et al. 2016 §4.2; key shortcut)",
            ModelKind::Resnet32 => "CIFAR ResNet-32",
            ModelKind::Resnet56 => "CIFAR ResNet-56",
            ModelKind::Resnet18 => "ImageNet ResNet-18 (He et al. 2016 Table 1)",
            ModelKind::Resnet34 => "ImageNet ResNet-34",
            ModelKind::Resnet50 => "ImageNet ResNet-50 (Bottleneck blocks)",
        }
    }

    /// The built-in model of this name.
    pub fn from_name(name: &str) -> Option<ModelKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The depth of a ResNet (0 for the others).
    pub fn depth(self) -> usize {
        match self {
            ModelKind::Mlp | ModelKind::Lenet5 | ModelKind::LenetBiotorch => 0,
            ModelKind::Resnet20 => 20,
            ModelKind::Resnet32 => 32,
            ModelKind::Resnet56 => 56,
            ModelKind::Resnet18 => 18,
            ModelKind::Resnet34 => 34,
            ModelKind::Resnet50 => 50,
        }
    }
    /// Whether the model can take images of `[C, H, W]`.
    pub fn check_input(self, image: [usize; 3]) -> Result<()> {
        match self {
            ModelKind::Lenet5 if image[1] < 12 || image[2] < 12 => Err(Error::config(
                "model",
                format!(
                    "lenet5 needs images of at least 12×12, the dataset's are {}×{}",
                    image[1], image[2]
                ),
            )),
            ModelKind::LenetBiotorch if image[1] < 32 || image[2] < 32 => Err(Error::config(
                "model",
                format!(
                    "lenet-biotorch needs images of at least 32×32, the dataset's are {}×{} \
                     (image_size = 32 resizes MNIST and Fashion-MNIST, as BioTorch does)",
                    image[1], image[2]
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The network of a run: a built-in one by name (`model = "resnet20"`) or a description of
/// your own (a `[model]` table with `layers`, or the list of layers alone; from Python a list of
/// dicts). Built-in names stay names in `config.toml`; a description is written out in full, so
/// the run directory holds everything resume, eval and report need.
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    Builtin(ModelKind),
    Described(Description),
}

impl Default for Model {
    fn default() -> Self {
        Model::Builtin(ModelKind::Mlp)
    }
}

impl From<ModelKind> for Model {
    fn from(k: ModelKind) -> Self {
        Model::Builtin(k)
    }
}

impl Model {
    /// The built-in model's name, or the description's.
    pub fn name(&self) -> &str {
        match self {
            Model::Builtin(k) => k.name(),
            Model::Described(d) => &d.name,
        }
    }

    /// The built-in model, if it is one.
    pub fn builtin(&self) -> Option<ModelKind> {
        match self {
            Model::Builtin(k) => Some(*k),
            Model::Described(_) => None,
        }
    }

    /// The model as a description (a built-in one shaped by `hidden`, `activation` and
    /// `shortcut`).
    pub fn description(&self, cfg: &TrainConfig) -> Description {
        match self {
            Model::Builtin(k) => {
                crate::models::builtin::describe(*k, &cfg.hidden, cfg.activation, cfg.shortcut)
            }
            Model::Described(d) => d.clone(),
        }
    }

    /// A model named on the command line: a built-in name, or a TOML file holding a
    /// description (what `nowt models --show` prints: `name` and `[[layers]]`, or a config
    /// file's `[model]` table).
    pub fn from_arg(arg: &str) -> Result<Model> {
        if let Some(k) = ModelKind::from_name(arg) {
            return Ok(Model::Builtin(k));
        }
        let path = std::path::Path::new(arg);
        if !path.is_file() {
            let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
            return Err(Error::config(
                "model",
                format!(
                    "{arg}: neither a built-in model ({}) nor a description file",
                    names.join(", ")
                ),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config("model", format!("cannot read {arg}: {e}")))?;
        let mut table: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::config("model", format!("{arg}: {}", e.message().trim())))?;
        let value = match table.remove("model") {
            Some(inner) if table.is_empty() => inner,
            Some(_) => {
                return Err(Error::config(
                    "model",
                    format!("{arg}: a description file holds the model alone (name, layers)"),
                ))
            }
            None => toml::Value::Table(table),
        };
        let d: Description = value.try_into().map_err(|e: toml::de::Error| {
            Error::config("model", format!("{arg}: {}", e.message().trim()))
        })?;
        Ok(Model::Described(d))
    }
}

impl Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Model::Builtin(k) => k.serialize(s),
            Model::Described(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer, StrDeserializer};
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Model;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a built-in model's name or a description (a table with layers)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Model, E> {
                ModelKind::deserialize(StrDeserializer::<E>::new(v)).map(Model::Builtin)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Model, A::Error> {
                Description::deserialize(MapAccessDeserializer::new(map)).map(Model::Described)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Model, A::Error> {
                let layers = crate::models::layer_list(SeqAccessDeserializer::new(seq))?;
                Ok(Model::Described(Description {
                    name: "custom".into(),
                    layers,
                }))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Every config key (as in `config.toml`) with what it means: `nowt train --help` shows these
/// for its flags and the Python package's `help(nowt.train)` for its keyword arguments, each with
/// the default from [`TrainConfig::default`] ([`key_help`]). A test keeps it complete.
pub const KEY_DOCS: [(&str, &str); 46] = [
    (
        "rule",
        "Learning rule, by name or alias, any case (nowt rules describes each).",
    ),
    (
        "model",
        "Model: a built-in one (mlp, lenet5, lenet-biotorch, resnet20, resnet32, resnet56, resnet18, resnet34, resnet50; nowt models lists them) or your own: a description file (--model my.toml, as nowt models --show prints), a [model] table with layers, or from Python a list of layer dicts (README: Your own network).",
    ),
    (
        "shortcut",
        "The CIFAR ResNets' shortcut where a stage begins: projection (1×1 conv + batch norm, He et al.'s option B) or identity (subsampling with zero-padded channels, option A, BioTorch's).",
    ),
    (
        "hidden",
        "MLP hidden sizes, comma-separated (e.g. 500 or 1000,1000).",
    ),
    (
        "activation",
        "MLP nonlinearity: relu, tanh, sigmoid.",
    ),
    (
        "dataset",
        "Dataset: digits (embedded), mnist, fashion-mnist, cifar10, cifar100, image-folder (arrays: given by the Python package's data=).",
    ),
    (
        "data_dir",
        "Directory holding the dataset's files. [default: data/mnist for mnist, Debian's directory for fashion-mnist, ../shared/data/cifar10-jpeg.tar.gz for cifar10, data/cifar-100-binary]",
    ),
    (
        "epochs",
        "Passes over the training set.",
    ),
    (
        "batch_size",
        "Samples per training step.",
    ),
    (
        "lr",
        "Base learning rate η.",
    ),
    (
        "optimizer",
        "Optimiser: sgd, adam (weight decay added to the gradient) or adamw (decoupled).",
    ),
    (
        "momentum",
        "SGD momentum μ, PyTorch's form.",
    ),
    (
        "nesterov",
        "Use Nesterov momentum.",
    ),
    (
        "weight_decay",
        "Weight decay λ on weights, not biases (Kolen-Pollack's λ for W and B too, unless rules.kp_decay gives its own).",
    ),
    (
        "decay_all",
        "Decay every parameter (biases, batch norm) by weight_decay, as BioTorch does.",
    ),
    (
        "adam_beta1",
        "Adam's β₁.",
    ),
    (
        "adam_beta2",
        "Adam's β₂.",
    ),
    (
        "adam_eps",
        "Adam's ε.",
    ),
    (
        "schedule",
        "Learning-rate schedule: constant, multistep, cosine.",
    ),
    (
        "milestones",
        "Multistep milestones in epochs, comma-separated.",
    ),
    (
        "gamma",
        "Multistep factor.",
    ),
    (
        "warmup_epochs",
        "Linear warm-up length in epochs.",
    ),
    (
        "seed",
        "Seeds W, B, shuffling, augmentation, the validation split and mirror noise.",
    ),
    (
        "threads",
        "Worker threads (0: one per core).",
    ),
    (
        "val_fraction",
        "Fraction of the training set held out for validation.",
    ),
    (
        "probe_size",
        "Samples in the fixed probe batch for δ-angles.",
    ),
    (
        "probe_every",
        "Also measure every layer's angles on the probe batch every N training steps (and before the first), into probes.jsonl (0: only at each epoch's end). [default: 0]",
    ),
    (
        "bias_init",
        "The value every convolution's and linear layer's bias starts at. [default: 0]",
    ),
    (
        "init_alignment",
        "One-time soft alignment: B₀ ← α(‖B₀‖/‖W₀‖)W₀ + √(1−α²)B₀, cos ∠(W₀, B₀) ≈ α, under the rules whose M is B (0: B₀ as drawn).",
    ),
    (
        "pretrain_noise_steps",
        "Noise pre-training: steps under the run's rule on random inputs and labels before the first data step (0: none).",
    ),
    (
        "pretrain_noise",
        "Noise pre-training's inputs: gaussian or uniform.",
    ),
    (
        "pretrain_noise_std",
        "Noise pre-training's input standard deviation (the normalised data's is 1).",
    ),
    (
        "pretrain_labels",
        "Noise pre-training's labels: uniform (each drawn alone) or balanced (each class equally often in a batch).",
    ),
    (
        "augment",
        "Augmentation: CIFAR crop of the 4-padded image and flip, or (with --image-size) the ImageNet random-resized crop and flip.",
    ),
    (
        "sync_bn",
        "Several ranks (mpirun): batch norm normalises by the whole global batch's statistics, summed over the ranks, so K ranks reproduce one.",
    ),
    (
        "image_size",
        "Image folders: ImageNet transforms to S×S (evaluation: resize to S·256/224, centre crop). [default: 0, the images' own size]",
    ),
    (
        "train_limit",
        "Train on a seeded random subset of N training samples (0: all).",
    ),
    (
        "test_limit",
        "Evaluate on a seeded random subset of N test samples (0: all).",
    ),
    (
        "data_threads",
        "Threads that decode and augment batches in the background.",
    ),
    (
        "divergence_loss_factor",
        "Stop when a batch's training loss exceeds this multiple of ln(classes).",
    ),
    (
        "divergence_weight_factor",
        "Stop when a layer's ‖W‖ or ‖B‖ grows to this multiple of its initial norm.",
    ),
    (
        "allow_divergence",
        "Do not stop a run whose loss or weights explode (non-finite values always stop it).",
    ),
    (
        "tensorboard",
        "Also write TensorBoard event files in the run's tb/ (every metrics scalar per epoch, the step loss every log_every steps).",
    ),
    (
        "out",
        "Run directory (must not exist yet, or be empty). [default: runs/<dataset>-<model>-<rule>-s<seed>-<time>]",
    ),
    (
        "output_layer_rule",
        "The output layer's error: same (the rule) or backprop (M = W at the top weight layer, the rule below it: the output-layer ablation).",
    ),
    (
        "init",
        "How W and B are first drawn: he (N(0, init_std²) at the model's He scale) or xavier-uniform (BioTorch's, for W, B and DFA's D).",
    ),
];

/// What `key` means with its default: `nowt train --help`'s text for the key's flag, and the
/// Python package's for its keyword argument.
pub fn key_help(key: &str) -> String {
    let mut doc = KEY_DOCS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, d)| *d)
        .to_string();
    if key == "rule" {
        // Every rule, from the registry.
        let names: Vec<String> = RuleKind::ALL
            .iter()
            .map(|k| format!("{} ({})", k.name(), k.alias()))
            .collect();
        doc = format!("{doc} One of: {}.", names.join(", "));
    }
    if doc.contains("[default:") {
        return doc;
    }
    fn show(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        }
    }
    let defaults = toml::Table::try_from(TrainConfig::default()).expect("the defaults serialise");
    match defaults.get(key) {
        Some(v) => format!("{doc} [default: {}]", show(v)),
        None => format!("{doc} [default: none]"),
    }
}

/// The widest layer a config may ask for (larger requests are mistakes, not models).
pub const MAX_WIDTH: usize = 1 << 20;

/// Noise pre-training's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PretrainLabels {
    /// Each label drawn uniformly from the classes, independently.
    Uniform,
    /// Each class equally often in a batch (as nearly as the batch allows), in random order.
    Balanced,
}

/// Whether a count or number is 0 (a key left out of a written config at its default).
fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

/// A training run's configuration. Every field has a default (see [`TrainConfig::default`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Learning rule. Default `backprop`.
    pub rule: RuleKind,
    /// Architecture: a built-in model or a description of one. Default `mlp`.
    pub model: Model,
    /// The CIFAR ResNets' shortcut where a stage begins: `projection` (1×1 convolution and batch
    /// norm, He et al.'s option B) or `identity` (subsampling with zero-padded channels, option
    /// A: He et al.'s CIFAR networks and BioTorch's). Default `projection`.
    pub shortcut: Shortcut,
    /// MLP hidden layer sizes. Default `[256]`.
    pub hidden: Vec<usize>,
    /// MLP nonlinearity. Default `relu`.
    pub activation: ActivationKind,
    /// Dataset. Default `digits` (embedded).
    pub dataset: DatasetKind,
    /// Where the dataset's files are; defaults per dataset (`data/mnist`, Debian's Fashion-MNIST).
    pub data_dir: Option<PathBuf>,
    /// Default 20.
    pub epochs: usize,
    /// Default 128: with 32 (and a constant rate) the weight mirror blew up on MNIST (a
    /// training loss of 10¹²) (docs/defaults.md).
    pub batch_size: usize,
    /// Base learning rate `η`. Default 0.01: at 0.05 feedback alignment, the weight mirror and
    /// Kolen-Pollack blew up on CIFAR-10 (the default MLP) within the first epoch; at 0.01 every
    /// rule trains MNIST, Fashion-MNIST and CIFAR-10 (docs/defaults.md).
    pub lr: f64,
    /// `sgd`, `adam` or `adamw` (optim.rs). Default `sgd`.
    pub optimizer: OptimizerKind,
    /// SGD's momentum. Default 0.9.
    pub momentum: f64,
    /// Default false.
    pub nesterov: bool,
    /// Weight decay `λ` on weights (not biases). Default 1e-4. Kolen-Pollack applies it to `W`
    /// and `B` alike unless `rules.kp_decay` gives its own.
    pub weight_decay: f64,
    /// Also decay biases and batch norm's scale and shift by `weight_decay`, as BioTorch does
    /// (PyTorch's `weight_decay` on every parameter). Default false: weights only.
    pub decay_all: bool,
    /// Adam's `β₁`. Default 0.9.
    pub adam_beta1: f64,
    /// Adam's `β₂`. Default 0.999.
    pub adam_beta2: f64,
    /// Adam's `ε`. Default 1e-8.
    pub adam_eps: f64,
    /// Default `cosine` (see `batch_size`).
    pub schedule: ScheduleKind,
    /// Multistep: epochs at which the rate is multiplied by `gamma`. Default `[]`.
    pub milestones: Vec<usize>,
    /// Default 0.1.
    pub gamma: f64,
    /// Linear warm-up length in epochs. Default 0.
    pub warmup_epochs: f64,
    /// Seeds initialisation, shuffling, validation split and mirror noise. Default 0.
    pub seed: u64,
    /// Worker threads; 0 means one per core. Default 0.
    pub threads: usize,
    /// Fraction of the training set held out for validation. Default 0.
    pub val_fraction: f64,
    /// Training samples in the fixed probe batch for δ-angles. Default 256.
    pub probe_size: usize,
    /// Also measure the layers ([`crate::train::layer_records`]) on the probe batch every this
    /// many training steps and before the first, each a [`crate::train::ProbeRecord`] in the
    /// run's `probes.jsonl`, so the first steps' alignment, where a learned `B` lags its `W`,
    /// is seen and not only each epoch's end. Measuring changes nothing in training. 0 (the
    /// default): only at each epoch's end. Left out of a written config when 0, so binaries
    /// that predate it read the configs of runs that do not use it.
    #[serde(skip_serializing_if = "is_zero")]
    pub probe_every: usize,
    /// One-time soft alignment of `B₀` with `W₀` (Cheon, Bae & Paik 2025), `α ∈ [0, 1]`:
    /// `B₀ ← α (‖B₀‖/‖W₀‖) W₀ + √(1 − α²) B₀` at every layer, so `cos ∠(W₀, B₀) ≈ α`
    /// ([`crate::rules::soft_align`]), then no weight transport. Applies under the rules whose
    /// `M` is `B` (feedback alignment and the rules that learn `B`). Default 0: `B₀` as drawn.
    pub init_alignment: f64,
    /// Noise pre-training (Cheon, Lee & Paik 2024): this many training steps under the run's
    /// rule, optimiser and base rate on random inputs shaped like the data's, paired with
    /// random labels, before the first data step (after the mirror family's warm-up). Under
    /// feedback alignment it aligns `W` to the fixed `B` before any data is seen. Default 0:
    /// none.
    pub pretrain_noise_steps: usize,
    /// Its inputs: `gaussian` `N(0, σ²)` or `uniform` `U(−√3σ, √3σ)` in the space of the
    /// normalised data. Default `gaussian`.
    pub pretrain_noise: MirrorNoise,
    /// `σ`. Default 1, the normalised data's own scale.
    pub pretrain_noise_std: f64,
    /// Its labels: `uniform` (each drawn independently) or `balanced` (each class equally
    /// often in a batch, in random order). Default `uniform`.
    pub pretrain_labels: PretrainLabels,
    /// Augmentation of training batches: for decoded images (CIFAR, MNIST) a random crop of
    /// the 4-padded image and a horizontal flip; for image folders with `image_size`, the
    /// ImageNet random-resized crop and flip. Default false.
    pub augment: bool,
    /// Data-parallel runs ([`crate::dist`]): batch norm normalises by the statistics of the whole
    /// global batch, summed over the ranks, so K ranks compute what one does (without it, each
    /// rank's own share, as PyTorch's DDP). No effect on one rank. Default false.
    pub sync_bn: bool,
    /// Image folders: crop size `S` of the ImageNet transforms (training: random-resized crop
    /// with `augment`; evaluation: resize to `S·256/224`, centre crop `S`). 0 keeps the images'
    /// own size. Default 0.
    pub image_size: usize,
    /// Train on a seeded random subset of this many training samples; 0: all. Default 0.
    pub train_limit: usize,
    /// Evaluate on a seeded random subset of this many test samples; 0: all. Default 0.
    pub test_limit: usize,
    /// Threads that decode and augment batches in the background. Default 1.
    pub data_threads: usize,
    /// Stop a run whose training loss on a batch exceeds this multiple of `ln(classes)`, the
    /// loss of a uniform guess (where every run starts, near enough). Default 100.
    pub divergence_loss_factor: f64,
    /// Stop a run when a layer's `‖W‖` or `‖B‖` grows to this multiple of its initial norm
    /// (checked every 16 steps and at each epoch's end). Default 1000.
    pub divergence_weight_factor: f64,
    /// Turn both divergence checks off (a non-finite loss always stops a run). Default false.
    pub allow_divergence: bool,
    /// Also write the run's scalars as TensorBoard event files in `<run>/tb/` (every number of
    /// each epoch's metrics record, per-layer measurements one tag per layer, and the step loss
    /// every `log_every` steps). Default false.
    pub tensorboard: bool,
    /// Run directory (used by the CLI). Default: `runs/<dataset>-<model>-<rule>-s<seed>-<time>`.
    pub out: Option<PathBuf>,
    /// How the output layer sends its error down: `same` (the rule) or `backprop` (the
    /// output-layer ablation, rules/output_layer.rs). Default `same`.
    pub output_layer_rule: OutputLayerRule,
    /// How `W` and `B` are first drawn: `he` (`N(0, init_std²)` at the model's scale) or
    /// `xavier-uniform` (BioTorch's, for `W`, `B` and DFA's `D`; sign symmetry's scale and the
    /// random-sign magnitudes follow). Default `he`.
    pub init: Init,
    /// The value every weight layer's bias starts at (convolutions and linear layers that have
    /// one; batch norm's `β` is not a weight layer's bias). Default 0. Versions of BioTorch's
    /// code started every bias at 1 (its DFA layers at commit 05f81e7, its FA and sign-symmetry
    /// layers at 12b8a2c); its current code starts them at 0, as the presets do. Left out of a
    /// written config when 0, so binaries that predate it read the configs of runs that do not
    /// use it.
    #[serde(skip_serializing_if = "is_zero")]
    pub bias_init: f64,
    /// Per-rule knobs.
    pub rules: RuleConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            rule: RuleKind::Backprop,
            model: Model::Builtin(ModelKind::Mlp),
            shortcut: Shortcut::Projection,
            hidden: vec![256],
            activation: ActivationKind::Relu,
            dataset: DatasetKind::Digits,
            data_dir: None,
            epochs: 20,
            batch_size: 128,
            lr: 0.01,
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            decay_all: false,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            schedule: ScheduleKind::Cosine,
            milestones: Vec::new(),
            gamma: 0.1,
            warmup_epochs: 0.0,
            seed: 0,
            threads: 0,
            val_fraction: 0.0,
            probe_size: 256,
            probe_every: 0,
            init_alignment: 0.0,
            pretrain_noise_steps: 0,
            pretrain_noise: MirrorNoise::Gaussian,
            pretrain_noise_std: 1.0,
            pretrain_labels: PretrainLabels::Uniform,
            augment: false,
            sync_bn: false,
            image_size: 0,
            train_limit: 0,
            test_limit: 0,
            data_threads: 1,
            divergence_loss_factor: 100.0,
            divergence_weight_factor: 1000.0,
            allow_divergence: false,
            tensorboard: false,
            out: None,
            output_layer_rule: OutputLayerRule::Same,
            init: Init::He,
            bias_init: 0.0,
            rules: RuleConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The optimiser this config trains with (Adam's step count starts at 0; the training loop
    /// sets it).
    pub fn optimizer(&self) -> Optimizer {
        match self.optimizer {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd {
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
                decay_all: self.decay_all,
            }),
            OptimizerKind::Adam | OptimizerKind::Adamw => Optimizer::Adam(Adam {
                beta1: self.adam_beta1,
                beta2: self.adam_beta2,
                eps: self.adam_eps,
                weight_decay: self.weight_decay,
                decay_all: self.decay_all,
                decoupled: self.optimizer == OptimizerKind::Adamw,
                t: 0,
            }),
        }
    }

    /// Checks every value before anything is created or loaded.
    /// The model resolved for flat inputs holding `image`s and `classes` outputs: every layer
    /// named and sized, or a refusal naming the layer and the shapes (built-in models first
    /// say which images they take); and the rule's coefficients checked against its layers
    /// ([`RuleConfig::validate_for`]).
    pub fn model_parts(&self, image: [usize; 3], classes: usize) -> Result<Vec<Part>> {
        if let Some(k) = self.model.builtin() {
            k.check_input(image)?;
        }
        let parts = self.model.description(self).resolve(image, classes)?;
        let fan_ins: Vec<usize> = crate::models::weight_shapes(&parts)
            .iter()
            .map(|(_, shape)| shape[1..].iter().product())
            .collect();
        self.rules
            .validate_for(self.rule, self.batch_size, &fan_ins)?;
        Ok(parts)
    }

    /// Keys set away from their defaults that do nothing in this run — SGD's momentum under
    /// Adam, Adam's constants under SGD, `weight_decay` beside Kolen-Pollack's own `kp_decay`,
    /// another rule's knobs, a data directory for the built-in digits, milestones past the last
    /// epoch, a warm-up longer than the run — one line each, for the front ends to warn with
    /// (a warning, not a refusal: a config shared by several rules, as `nowt compare`'s, may
    /// carry what only some of them use).
    pub fn without_effect(&self) -> Vec<String> {
        let d = Self::default();
        let mut out = Vec::new();
        let sgd = self.optimizer == OptimizerKind::Sgd;
        let optimizer = self.optimizer.name();
        if !sgd && (self.momentum != d.momentum || self.nesterov) {
            out.push(format!(
                "momentum = {} and nesterov = {} are SGD's: no effect under optimizer {optimizer}",
                self.momentum, self.nesterov
            ));
        }
        for (key, v, dv) in [
            ("adam_beta1", self.adam_beta1, d.adam_beta1),
            ("adam_beta2", self.adam_beta2, d.adam_beta2),
            ("adam_eps", self.adam_eps, d.adam_eps),
        ] {
            if sgd && v != dv {
                out.push(format!(
                    "{key} = {v} is Adam's: no effect under optimizer sgd"
                ));
            }
        }
        if let (RuleKind::KolenPollack, Some(kp)) = (self.rule, self.rules.kp_decay) {
            if self.weight_decay != d.weight_decay && self.weight_decay != kp {
                out.push(format!(
                    "weight_decay = {} has no effect: rules.kp_decay = {kp} is the decay of W \
                     and B under kolen-pollack",
                    self.weight_decay
                ));
            }
        }
        out.extend(self.other_rules_knobs());
        let rule = crate::rules::build::<f32>(self.rule, &self.rules, self.batch_size);
        if self.init_alignment > 0.0 && !crate::rules::carries_through_b(rule.as_ref()) {
            out.push(format!(
                "init_alignment = {} has no effect under rule {}: its M is not B",
                self.init_alignment,
                self.rule.name()
            ));
        }
        if self.dataset == DatasetKind::Digits && self.data_dir.is_some() {
            out.push("data_dir has no effect with dataset digits (built in)".into());
        }
        let late: Vec<usize> = (self.milestones.iter())
            .copied()
            .filter(|&m| m >= self.epochs)
            .collect();
        if self.schedule == ScheduleKind::Multistep && !late.is_empty() {
            out.push(format!(
                "milestones {late:?} are never reached: the run ends after epoch {}",
                self.epochs
            ));
        }
        if self.warmup_epochs > self.epochs as f64 {
            out.push(format!(
                "warmup_epochs = {} is longer than the run ({} epochs): the learning rate never \
                 reaches lr = {}",
                self.warmup_epochs, self.epochs, self.lr
            ));
        }
        out
    }

    /// `rules.<key> = v has no effect under <rule>` for every knob of another rule (the
    /// registry's) whose value is not its default.
    fn other_rules_knobs(&self) -> Vec<String> {
        let table = |r: &RuleConfig| toml::Table::try_from(r).unwrap_or_default();
        let (ours, defaults) = (table(&self.rules), table(&RuleConfig::default()));
        let lookup = |t: &toml::Table, key: &str| {
            let mut at = Some(t);
            let mut parts = key.split('.').peekable();
            while let Some(part) = parts.next() {
                let v = at?.get(part)?;
                if parts.peek().is_none() {
                    return Some(v.clone());
                }
                at = v.as_table();
            }
            None
        };
        let mut out = Vec::new();
        for info in crate::rules::REGISTRY
            .iter()
            .filter(|i| i.kind != self.rule)
        {
            for k in info.knobs {
                let v = lookup(&ours, k.key);
                match v {
                    Some(v) if Some(&v) != lookup(&defaults, k.key).as_ref() => out.push(format!(
                        "rules.{} = {v} is {}'s: no effect under {}",
                        k.key,
                        info.name,
                        self.rule.name()
                    )),
                    _ => {}
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(key, msg));
        if self.epochs == 0 {
            return bad("epochs", "must be a positive integer, got 0".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be a positive integer, got 0".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("nesterov", "needs momentum > 0".into());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be a non-negative number, got {}", self.weight_decay),
            );
        }
        for (key, beta) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return bad(key, format!("must be in [0, 1), got {beta}"));
            }
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return bad(
                "adam_eps",
                format!("must be a positive number, got {}", self.adam_eps),
            );
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return bad(
                "gamma",
                format!("must be a positive number, got {}", self.gamma),
            );
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup_epochs",
                format!("must be a non-negative number, got {}", self.warmup_epochs),
            );
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad(
                "val_fraction",
                format!("must be in [0, 1), got {}", self.val_fraction),
            );
        }
        if self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("layer sizes must be positive, got {:?}", self.hidden),
            );
        }
        if self.data_threads == 0 {
            return bad("data_threads", "must be a positive integer, got 0".into());
        }
        if self.image_size > 4096 {
            return bad(
                "image_size",
                format!("must be at most 4096, got {}", self.image_size),
            );
        }
        for (key, v) in [
            ("divergence_loss_factor", self.divergence_loss_factor),
            ("divergence_weight_factor", self.divergence_weight_factor),
        ] {
            if !(v.is_finite() && v > 1.0) {
                return bad(key, format!("must be a number above 1, got {v}"));
            }
        }
        if !self.milestones.is_empty() && self.schedule != ScheduleKind::Multistep {
            return bad(
                "milestones",
                format!(
                    "{:?} given with schedule {}: milestones only apply to schedule multistep",
                    self.milestones,
                    self.schedule.name()
                ),
            );
        }
        let cifar_resnet = matches!(
            self.model.builtin(),
            Some(ModelKind::Resnet20 | ModelKind::Resnet32 | ModelKind::Resnet56)
        );
        if self.shortcut == Shortcut::Identity && !cifar_resnet {
            return bad(
                "shortcut",
                format!(
                    "identity (option A) is for the CIFAR ResNets (resnet20, resnet32, resnet56), \
                     not {} (a described model gives its blocks their own shortcut)",
                    self.model.name()
                ),
            );
        }
        if self.probe_size == 0 {
            return bad("probe_size", "must be a positive integer, got 0".into());
        }
        if !self.bias_init.is_finite() {
            return bad(
                "bias_init",
                format!("must be a finite number, got {}", self.bias_init),
            );
        }
        if !(0.0..=1.0).contains(&self.init_alignment) {
            return bad(
                "init_alignment",
                format!(
                    "must be between 0 and 1 (cos of the angle between W₀ and B₀), got {}",
                    self.init_alignment
                ),
            );
        }
        if !(self.pretrain_noise_std.is_finite() && self.pretrain_noise_std > 0.0) {
            return bad(
                "pretrain_noise_std",
                format!("must be a positive number, got {}", self.pretrain_noise_std),
            );
        }
        self.rules.validate()
    }

    /// How the dataset is loaded.
    pub fn load_options(&self) -> crate::data::LoadOptions {
        crate::data::LoadOptions {
            val_fraction: self.val_fraction,
            seed: self.seed,
            image_size: self.image_size,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
        }
    }

    /// The decay `W` receives under this config's rule: `weight_decay`, or a rule's own `λ`
    /// where it replaces it (Kolen-Pollack with `rules.kp_decay` set). A fair comparison has
    /// the same value under every rule.
    pub fn w_decay(&self) -> f64 {
        crate::rules::build::<f32>(self.rule, &self.rules, self.batch_size)
            .shared_update_decay(self.weight_decay)
            .unwrap_or(self.weight_decay)
    }

    /// The thread count actually used.
    pub fn resolved_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.threads
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key that does nothing where it is set is named once, with why; the defaults and a
    /// key that does act (Adam's constants under AdamW, `weight_decay` equal to `kp_decay`)
    /// are not.
    #[test]
    fn keys_without_effect_are_named() {
        assert!(TrainConfig::default().without_effect().is_empty());
        let mut rules = RuleConfig::default();
        rules.wm.lr = 0.05;
        rules.kp_decay = Some(1e-3);
        let cases = [
            (
                TrainConfig {
                    optimizer: OptimizerKind::Adam,
                    momentum: 0.5,
                    ..Default::default()
                },
                "momentum = 0.5 and nesterov = false are SGD's: no effect under optimizer adam",
            ),
            (
                TrainConfig {
                    adam_beta2: 0.99,
                    ..Default::default()
                },
                "adam_beta2 = 0.99 is Adam's: no effect under optimizer sgd",
            ),
            (
                TrainConfig {
                    rule: RuleKind::KolenPollack,
                    weight_decay: 0.01,
                    rules: rules.clone(),
                    ..Default::default()
                },
                "weight_decay = 0.01 has no effect: rules.kp_decay = 0.001 is the decay of W and B under kolen-pollack",
            ),
            (
                TrainConfig {
                    rules: rules.clone(),
                    ..Default::default()
                },
                "rules.wm.lr = 0.05 is weight-mirror's: no effect under backprop",
            ),
            (
                TrainConfig {
                    dataset: DatasetKind::Digits,
                    data_dir: Some("/data".into()),
                    ..Default::default()
                },
                "data_dir has no effect with dataset digits (built in)",
            ),
            (
                TrainConfig {
                    epochs: 3,
                    schedule: ScheduleKind::Multistep,
                    milestones: vec![1, 3, 5],
                    ..Default::default()
                },
                "milestones [3, 5] are never reached: the run ends after epoch 3",
            ),
            (
                TrainConfig {
                    epochs: 2,
                    warmup_epochs: 2.5,
                    ..Default::default()
                },
                "warmup_epochs = 2.5 is longer than the run (2 epochs): the learning rate never reaches lr = 0.01",
            ),
        ];
        for (cfg, want) in cases {
            let got = cfg.without_effect();
            assert!(got.iter().any(|g| g == want), "want {want:?}, got {got:?}");
        }
        // What acts is not named: Adam's constants under AdamW, a weight decay equal to
        // kp_decay, the weight mirror's own knobs.
        let acting = [
            TrainConfig {
                optimizer: OptimizerKind::Adamw,
                adam_beta2: 0.99,
                ..Default::default()
            },
            TrainConfig {
                rule: RuleKind::KolenPollack,
                weight_decay: 1e-3,
                rules: RuleConfig {
                    kp_decay: Some(1e-3),
                    ..Default::default()
                },
                ..Default::default()
            },
            TrainConfig {
                rule: RuleKind::WeightMirror,
                rules: RuleConfig {
                    wm: crate::rules::MirrorConfig {
                        lr: 0.05,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        for cfg in acting {
            assert!(
                cfg.without_effect().is_empty(),
                "{:?}",
                cfg.without_effect()
            );
        }
    }

    /// Every config key but the rules' section has its doc (which `nowt train --help` and
    /// Python's `help(nowt.train)` show), and every doc is of a key.
    #[test]
    fn every_key_is_documented_once() {
        let defaults = toml::Table::try_from(TrainConfig::default()).unwrap();
        let mut keys: Vec<&str> = defaults
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "rules")
            .collect();
        for optional in ["data_dir", "out", "milestones", "probe_every", "bias_init"] {
            if !keys.contains(&optional) {
                keys.push(optional);
            }
        }
        let mut documented: Vec<&str> = KEY_DOCS.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        documented.sort_unstable();
        assert_eq!(keys, documented);
        assert_eq!(key_help("lr"), "Base learning rate η. [default: 0.01]");
        assert_eq!(
            key_help("hidden"),
            "MLP hidden sizes, comma-separated (e.g. 500 or 1000,1000). [default: 256]"
        );
        assert!(
            key_help("out").ends_with("[default: runs/<dataset>-<model>-<rule>-s<seed>-<time>]")
        );
    }
}
