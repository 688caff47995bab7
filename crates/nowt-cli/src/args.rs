//! Command-line arguments. Training flags mirror the keys of the TOML config file and override
//! them; anything not given keeps the file's value or the library default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nowt::rules::RuleKind;

#[derive(Parser, Debug)]
#[command(
    name = "nowt",
    version,
    about = "Deep learning without weight transport (Akrout et al., NeurIPS 2019)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model under a learning rule and write a run directory.
    Train(Box<TrainArgs>),
    /// List the learning rules.
    Rules,
    /// Time full training steps on random data (ms/step, images/s, peak memory).
    Bench(BenchArgs),
    /// Report a checkpoint's test error.
    Eval(EvalArgs),
    /// Train several rules (and seeds) on one configuration, then write a report.
    Compare(Box<CompareArgs>),
    /// Build a report (tables and figures) from run directories.
    Report(ReportArgs),
    /// List the presets, or print one.
    Presets(PresetsArgs),
    /// Prove the rules on this machine and build: the exact oracles (finite differences, the
    /// feedback-alignment control, Kolen-Pollack = backprop from B₀ = W₀, each rule's matrix and
    /// feedback dynamics, the mirror's law) on tiny instances of the models; exits 1 on a failure.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Models to check (tiny instances): any of mlp, lenet5, resnet20, resnet32, resnet56,
    /// resnet18, resnet34, resnet50, or `all`. [default: mlp,lenet5,resnet20,resnet18, one of
    /// each kind of layer in seconds; the deeper ResNets take minutes]
    #[arg(long, value_delimiter = ',', value_parser = model_or_all)]
    pub model: Vec<ModelChoice>,
    /// Rules to check (full names or aliases). [default: every rule]
    #[arg(long, value_delimiter = ',', value_parser = rule)]
    pub rule: Vec<RuleKind>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Rules to run, in order (full names or aliases).
    #[arg(long, value_delimiter = ',', value_parser = rule,
          default_value = "backprop,feedback-alignment,sign-symmetry,weight-mirror,kolen-pollack")]
    pub rules: Vec<RuleKind>,
    /// Seeds to run each rule with.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// A sweep: every rule at each value of a config key, KEY=V1,V2,… (keys as in config files:
    /// lr, weight_decay, rules.wm.lr; repeat the flag for the product of several keys). Needs
    /// --val-fraction: the report keeps each rule's value with the lowest validation error.
    /// A key that a rule's [overrides.<rule>] sets keeps its published value [default: none].
    #[arg(long, value_parser = nowt::compare::sweep::axis)]
    pub grid: Vec<nowt::compare::sweep::Axis>,
    /// The configuration (a preset or a TOML file with `[overrides.<rule>]` tables) and any
    /// training flag on top; `--out` is the comparison's directory, one run in `<rule>-s<seed>`.
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories, or directories of runs (a comparison's output).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write report.md, report.csv and figures/ (default: the first directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PresetsArgs {
    /// Print this preset's TOML [default: none, list every preset].
    #[arg(long)]
    pub show: Option<String>,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint file (`<run>/checkpoints/ckpt-*.safetensors`).
    pub checkpoint: PathBuf,
    /// Dataset to evaluate on (default: the one the checkpoint was trained on).
    #[arg(long, value_parser = name::<nowt::data::DatasetKind>)]
    pub dataset: Option<nowt::data::DatasetKind>,
    /// Directory holding the dataset's files (default: the checkpoint's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Parses a rule by full name or alias.
/// A `--model` of `nowt check` or the `--rule` of `nowt bench`: one, or `all`.
#[derive(Clone, Copy, Debug)]
pub enum Choice<T> {
    All,
    One(T),
}

pub type ModelChoice = Choice<nowt::config::ModelKind>;
pub type RuleChoice = Choice<RuleKind>;

/// `all`, or what `one` parses.
fn or_all<T>(s: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Choice<T>, String> {
    if s == "all" {
        Ok(Choice::All)
    } else {
        one(s)
            .map(Choice::One)
            .map_err(|e| format!("{e}, or `all`"))
    }
}

fn model_or_all(s: &str) -> Result<ModelChoice, String> {
    or_all(s, name)
}

fn rule_or_all(s: &str) -> Result<RuleChoice, String> {
    or_all(s, rule)
}

fn rule(s: &str) -> Result<RuleKind, String> {
    RuleKind::from_name(s).map_err(|e| e.to_string())
}

/// One rule knob given on the command line: `--<flag> <value>`.
#[derive(Clone, Debug, PartialEq)]
pub struct KnobFlag {
    pub rule: RuleKind,
    /// The config key under `[rules]` (`wm.lr`).
    pub key: &'static str,
    pub flag: &'static str,
    pub value: String,
}

/// Every rule's knobs as flags, generated from the registry ([`nowt::rules::REGISTRY`]): a
/// rule's file declares its knobs once (key, flag, doc) and they appear here, in `nowt rules`
/// and in `--help` without code in the CLI. Values are TOML values (`0.01`, `zero`), applied to
/// the config under `[rules]` by [`crate::run::resolve`], which type-checks them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleKnobs(pub Vec<KnobFlag>);

fn knobs() -> impl Iterator<Item = (RuleKind, &'static nowt::rules::Knob)> {
    nowt::rules::REGISTRY
        .iter()
        .flat_map(|r| r.knobs.iter().map(move |k| (r.kind, k)))
}

impl clap::FromArgMatches for RuleKnobs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(
            knobs()
                .filter_map(|(rule, k)| {
                    m.get_one::<String>(k.flag).map(|v| KnobFlag {
                        rule,
                        key: k.key,
                        flag: k.flag,
                        value: v.clone(),
                    })
                })
                .collect(),
        ))
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for RuleKnobs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        knobs().fold(cmd, |cmd, (rule, k)| {
            cmd.arg(
                clap::Arg::new(k.flag)
                    .long(k.flag)
                    .value_name("VALUE")
                    .allow_negative_numbers(true)
                    .help_heading("Rule knobs (nowt rules lists them)")
                    .help(format!("{}: {} [rules.{}]", rule.name(), k.doc, k.key)),
            )
        })
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Parses any kebab-case name the library defines (model, dataset, activation, ...).
pub fn name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    T::deserialize(s.into_deserializer()).map_err(|e: serde::de::value::Error| e.to_string())
}

#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct TrainArgs {
    /// Continue the run in this directory from its newest valid checkpoint (its own config is
    /// used; only --data-dir, for data that moved, and --epochs, to extend it, may change)
    /// [default: none, a new run].
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start a new run from this checkpoint's weights, feedback weights and batch-norm state
    /// (optimiser state starts afresh) [default: none].
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Also checkpoint every N steps (0: only at the end of each epoch and on Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Checkpoints to keep (the newest).
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// TOML config file; flags override its values [default: none].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A preset shipped in the binary (`nowt presets` lists them); flags override its values
    /// [default: none].
    #[arg(long)]
    pub preset: Option<String>,
    /// Learning rule: backprop (bp), feedback-alignment (fa), sign-symmetry (ss), weight-mirror (wm), kolen-pollack (kp). [default: backprop]
    #[arg(long, value_parser = rule)]
    pub rule: Option<RuleKind>,
    /// Model: mlp, lenet5, resnet20, resnet32, resnet56 (CIFAR), resnet18, resnet34, resnet50
    /// (ImageNet) [default: mlp].
    #[arg(long, value_parser = name::<nowt::config::ModelKind>)]
    pub model: Option<nowt::config::ModelKind>,
    /// MLP hidden sizes, comma-separated (e.g. 500 or 1000,1000). [default: 256]
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// MLP nonlinearity: relu, tanh, sigmoid. [default: relu]
    #[arg(long, value_parser = name::<nowt::layers::ActivationKind>)]
    pub activation: Option<nowt::layers::ActivationKind>,
    /// Dataset: digits (embedded), mnist, fashion-mnist, cifar10, cifar100, image-folder. [default: digits]
    #[arg(long, value_parser = name::<nowt::data::DatasetKind>)]
    pub dataset: Option<nowt::data::DatasetKind>,
    /// Directory holding the dataset's files [default: data/mnist for mnist, Debian's directory for
    /// fashion-mnist, ../shared/data/cifar10-jpeg.tar.gz for cifar10, data/cifar-100-binary].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set [default: 20].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per training step [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate η [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam (weight decay added to the gradient) or adamw (decoupled).
    /// [default: sgd]
    #[arg(long, value_parser = name::<nowt::optim::OptimizerKind>)]
    pub optimizer: Option<nowt::optim::OptimizerKind>,
    /// Adam's β₁ [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub adam_beta1: Option<f64>,
    /// Adam's β₂ [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    pub adam_beta2: Option<f64>,
    /// Adam's ε [default: 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    pub adam_eps: Option<f64>,
    /// SGD momentum μ, PyTorch's form [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Use Nesterov momentum [default: off].
    #[arg(long)]
    pub nesterov: bool,
    /// Decay every parameter (biases, batch norm) by --weight-decay, as BioTorch does [default:
    /// off: weights only].
    #[arg(long)]
    pub decay_all: bool,
    /// Augmentation: CIFAR crop of the 4-padded image and flip, or (with --image-size) the
    /// ImageNet random-resized crop and flip [default: off].
    #[arg(long)]
    pub augment: bool,
    /// Several ranks (mpirun): batch norm normalises by the whole global batch's statistics,
    /// summed over the ranks, so K ranks reproduce one [default: off: each rank's own share].
    #[arg(long)]
    pub sync_bn: bool,
    /// Image folders: ImageNet transforms to S×S (evaluation: resize to S·256/224, centre crop). [default: 0, the images' own size]
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Train on a seeded random subset of N training samples (0: all). [default: 0]
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate on a seeded random subset of N test samples (0: all). [default: 0]
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Threads that decode and augment batches in the background. [default: 1]
    #[arg(long)]
    pub data_threads: Option<usize>,
    /// Weight decay λ on weights, not biases (Kolen-Pollack's λ for W and B too, unless --kp-decay gives its own) [default: 1e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: constant, multistep, cosine. [default: cosine]
    #[arg(long, value_parser = name::<nowt::optim::ScheduleKind>)]
    pub schedule: Option<nowt::optim::ScheduleKind>,
    /// Multistep milestones in epochs, comma-separated. [default: none]
    #[arg(long, value_delimiter = ',')]
    pub milestones: Option<Vec<usize>>,
    /// Multistep factor. [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// Linear warm-up length in epochs. [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_epochs: Option<f64>,
    /// Seeds W, B, shuffling, augmentation, the validation split and mirror noise [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (0: one per core) [default: 0].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Fraction of the training set held out for validation. [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// Samples in the fixed probe batch for δ-angles. [default: 256]
    #[arg(long)]
    pub probe_size: Option<usize>,
    /// Run directory (must not exist yet, or be empty). [default: runs/<dataset>-<model>-<rule>-s<seed>-<time>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The output layer's error: same (the rule) or backprop (M = W at the top weight layer,
    /// the rule below it: the output-layer ablation). [default: same]
    #[arg(long, value_parser = name::<nowt::rules::OutputLayerRule>)]
    pub output_layer_rule: Option<nowt::rules::OutputLayerRule>,
    /// The CIFAR ResNets' shortcut where a stage begins: projection (1×1 conv + batch norm, He et
    /// al.'s option B) or identity (subsampling with zero-padded channels, option A, BioTorch's).
    /// [default: projection]
    #[arg(long, value_parser = name::<nowt::layers::Shortcut>)]
    pub shortcut: Option<nowt::layers::Shortcut>,
    /// How W and B are first drawn: he (N(0, init_std²) at the model's He scale) or
    /// xavier-uniform (BioTorch's, for W, B and DFA's D). [default: he]
    #[arg(long, value_parser = name::<nowt::params::Init>)]
    pub init: Option<nowt::params::Init>,
    #[command(flatten)]
    pub knobs: RuleKnobs,
    /// Also print a progress line every N training steps (0: only per epoch).
    #[arg(long, default_value_t = 0)]
    pub log_every: usize,
    /// Stop when a batch's training loss exceeds this multiple of ln(classes) [default: 100].
    #[arg(long)]
    pub divergence_loss_factor: Option<f64>,
    /// Stop when a layer's ‖W‖ or ‖B‖ grows to this multiple of its initial norm [default: 1000].
    #[arg(long)]
    pub divergence_weight_factor: Option<f64>,
    /// Do not stop a run whose loss or weights explode (non-finite values always stop it).
    #[arg(long)]
    pub allow_divergence: bool,
    /// Also write TensorBoard event files in the run's tb/ (every metrics scalar per epoch, the
    /// step loss every --log-every steps).
    #[arg(long)]
    pub tensorboard: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model: mlp, lenet5, resnet20, resnet32, resnet56 (CIFAR), resnet18, resnet34, resnet50 (ImageNet).
    #[arg(long, default_value = "mlp", value_parser = name::<nowt::config::ModelKind>)]
    pub model: nowt::config::ModelKind,
    /// MLP hidden sizes (the peer's MLP is 784-1000-1000-10).
    #[arg(long, value_delimiter = ',', default_value = "1000,1000")]
    pub hidden: Vec<usize>,
    /// Input size (MNIST: 784).
    #[arg(long, default_value_t = 784)]
    pub inputs: usize,
    /// Convnets: input images of S×S (CIFAR: 32, ImageNet: 224).
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
    /// Classes of the classifier.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Learning rule (full name or alias), or `all`: every rule, then a table of each rule's
    /// step time and its ratio to backprop's.
    #[arg(long, value_parser = rule_or_all, default_value = "backprop")]
    pub rule: RuleChoice,
    /// Samples per training step (`--batch` is accepted too).
    #[arg(long, alias = "batch", default_value_t = 128)]
    pub batch_size: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
}
