//! Command-line arguments. Training flags mirror the keys of the TOML config file and override
//! them; anything not given keeps the file's value or the library default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nowt::rules::RuleKind;

/// `nowt --version`: the version, whether MPI is built in, and the CPU the binary was built for
/// (`.cargo/config.toml` builds with `target-cpu=native`: a binary built on one machine may not
/// run on an older one).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (features: ",
    env!("NOWT_FEATURES"),
    "; built for ",
    env!("NOWT_TARGET_CPU"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "nowt",
    version = VERSION,
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
    /// List the built-in models, or print one's description (the starting point for your own).
    Models(ModelsArgs),
    /// Prove the rules on this machine and build: the exact oracles (finite differences, the
    /// feedback-alignment control, Kolen-Pollack = backprop from B₀ = W₀, each rule's matrix and
    /// feedback dynamics, the mirror's law) on tiny instances of the models; exits 1 on a failure.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Models to check (tiny instances): any of mlp, lenet5, lenet-biotorch, resnet20, resnet32,
    /// resnet56, resnet18, resnet34, resnet50, a description file (my.toml, as `nowt models
    /// --show` prints), or `all` (the built-in ones). [default: mlp,lenet5,resnet20,resnet18,
    /// one of each kind of layer in seconds; the deeper ResNets take minutes]
    #[arg(long, value_delimiter = ',', value_parser = model_or_all)]
    pub model: Vec<ModelChoice>,
    /// Rules to check (full names or aliases). [default: every rule]
    #[arg(long, value_delimiter = ',', value_parser = rule)]
    pub rule: Vec<RuleKind>,
    /// Worker threads (0: one per core; the results do not depend on it).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
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
    /// The seeds the sweep chooses on (some of --seeds): every rule trains every point of --grid
    /// at these seeds first, then only its chosen point (the lowest mean validation error over
    /// them) at the other seeds — one seed to tune, three to report [default: every seed trains
    /// every point].
    #[arg(long, value_delimiter = ',')]
    pub grid_seeds: Vec<u64>,
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
pub struct ModelsArgs {
    /// Print this built-in model's description (a starting point for your own: save it, edit
    /// it, and give the file to --model) [default: none, list every built-in model].
    #[arg(long, value_parser = name::<nowt::config::ModelKind>)]
    pub show: Option<nowt::config::ModelKind>,
    /// The MLP's hidden sizes in what --show prints.
    #[arg(long, value_delimiter = ',', default_value = "256")]
    pub hidden: Vec<usize>,
    /// The MLP's nonlinearity in what --show prints.
    #[arg(long, default_value = "relu", value_parser = name::<nowt::layers::ActivationKind>)]
    pub activation: nowt::layers::ActivationKind,
    /// The CIFAR ResNets' shortcut in what --show prints: projection or identity.
    #[arg(long, default_value = "projection", value_parser = name::<nowt::layers::Shortcut>)]
    pub shortcut: nowt::layers::Shortcut,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint file (`<run>/checkpoints/ckpt-*.safetensors`), or a run directory (its
    /// newest checkpoint).
    pub checkpoint: PathBuf,
    /// Test samples to evaluate on: a seeded subset of this many, 0 for the whole test set
    /// [default: the run's own test_limit].
    #[arg(long)]
    pub test_limit: Option<usize>,
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

pub type ModelChoice = Choice<nowt::config::Model>;
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
    or_all(s, model)
}

/// A built-in model's name or a description file.
fn model(s: &str) -> Result<nowt::config::Model, String> {
    nowt::config::Model::from_arg(s).map_err(|e| e.to_string())
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

/// A whole number for a count flag (`--epochs`, `--batch-size`, …): `-5` is read as a value,
/// not as an unknown flag, and refused as what it is.
pub fn count<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| {
        if s.trim().starts_with('-') {
            format!("must be a whole number ≥ 0, got {s}")
        } else {
            format!("expected a whole number, got '{s}'")
        }
    })
}

/// Parses any kebab-case name the library defines (model, dataset, activation, ...).
pub fn name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    T::deserialize(s.into_deserializer()).map_err(|e: serde::de::value::Error| e.to_string())
}

#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct TrainArgs {
    /// Continue the run in this directory from its newest valid checkpoint (its own config is
    /// used; only --data-dir, for data that moved, --epochs, to extend it, and --threads, which
    /// changes no value, may change) [default: none, a new run].
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start a new run from this checkpoint's weights, feedback weights and batch-norm state
    /// (optimiser state starts afresh) [default: none].
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Also checkpoint every N steps (0: only at the end of each epoch and on Ctrl-C).
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Checkpoints to keep (the newest).
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// TOML config file; flags override its values [default: none].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A preset shipped in the binary (`nowt presets` lists them); flags override its values
    /// [default: none].
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long, help = nowt::config::key_help("rule"), value_parser = rule)]
    pub rule: Option<RuleKind>,
    #[arg(long, help = nowt::config::key_help("model"), value_parser = model)]
    pub model: Option<nowt::config::Model>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("hidden"), value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    #[arg(long, help = nowt::config::key_help("activation"), value_parser = name::<nowt::layers::ActivationKind>)]
    pub activation: Option<nowt::layers::ActivationKind>,
    #[arg(long, help = nowt::config::key_help("dataset"), value_parser = name::<nowt::data::DatasetKind>)]
    pub dataset: Option<nowt::data::DatasetKind>,
    #[arg(long, help = nowt::config::key_help("data_dir"))]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("epochs"))]
    pub epochs: Option<usize>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("batch_size"))]
    pub batch_size: Option<usize>,
    #[arg(long, help = nowt::config::key_help("lr"), allow_negative_numbers = true)]
    pub lr: Option<f64>,
    #[arg(long, help = nowt::config::key_help("optimizer"), value_parser = name::<nowt::optim::OptimizerKind>)]
    pub optimizer: Option<nowt::optim::OptimizerKind>,
    #[arg(long, help = nowt::config::key_help("adam_beta1"), allow_negative_numbers = true)]
    pub adam_beta1: Option<f64>,
    #[arg(long, help = nowt::config::key_help("adam_beta2"), allow_negative_numbers = true)]
    pub adam_beta2: Option<f64>,
    #[arg(long, help = nowt::config::key_help("adam_eps"), allow_negative_numbers = true)]
    pub adam_eps: Option<f64>,
    #[arg(long, help = nowt::config::key_help("momentum"), allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    #[arg(long, help = nowt::config::key_help("nesterov"))]
    pub nesterov: bool,
    #[arg(long, help = nowt::config::key_help("decay_all"))]
    pub decay_all: bool,
    #[arg(long, help = nowt::config::key_help("augment"))]
    pub augment: bool,
    #[arg(long, help = nowt::config::key_help("sync_bn"))]
    pub sync_bn: bool,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("image_size"))]
    pub image_size: Option<usize>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("train_limit"))]
    pub train_limit: Option<usize>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("test_limit"))]
    pub test_limit: Option<usize>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("data_threads"))]
    pub data_threads: Option<usize>,
    #[arg(long, help = nowt::config::key_help("weight_decay"), allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    #[arg(long, help = nowt::config::key_help("schedule"), value_parser = name::<nowt::optim::ScheduleKind>)]
    pub schedule: Option<nowt::optim::ScheduleKind>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("milestones"), value_delimiter = ',')]
    pub milestones: Option<Vec<usize>>,
    #[arg(long, help = nowt::config::key_help("gamma"), allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    #[arg(long, help = nowt::config::key_help("warmup_epochs"), allow_negative_numbers = true)]
    pub warmup_epochs: Option<f64>,
    #[arg(long, value_parser = count::<u64>, allow_negative_numbers = true, help = nowt::config::key_help("seed"))]
    pub seed: Option<u64>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("threads"))]
    pub threads: Option<usize>,
    #[arg(long, help = nowt::config::key_help("val_fraction"), allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("probe_size"))]
    pub probe_size: Option<usize>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("probe_every"))]
    pub probe_every: Option<usize>,
    #[arg(long, help = nowt::config::key_help("bias_init"), allow_negative_numbers = true)]
    pub bias_init: Option<f64>,
    #[arg(long, help = nowt::config::key_help("init_alignment"), allow_negative_numbers = true)]
    pub init_alignment: Option<f64>,
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, help = nowt::config::key_help("pretrain_noise_steps"))]
    pub pretrain_noise_steps: Option<usize>,
    #[arg(long, help = nowt::config::key_help("pretrain_noise"), value_parser = name::<nowt::rules::MirrorNoise>)]
    pub pretrain_noise: Option<nowt::rules::MirrorNoise>,
    #[arg(long, help = nowt::config::key_help("pretrain_noise_std"), allow_negative_numbers = true)]
    pub pretrain_noise_std: Option<f64>,
    #[arg(long, help = nowt::config::key_help("pretrain_labels"), value_parser = name::<nowt::config::PretrainLabels>)]
    pub pretrain_labels: Option<nowt::config::PretrainLabels>,
    #[arg(long, help = nowt::config::key_help("out"))]
    pub out: Option<PathBuf>,
    #[arg(long, help = nowt::config::key_help("output_layer_rule"), value_parser = name::<nowt::rules::OutputLayerRule>)]
    pub output_layer_rule: Option<nowt::rules::OutputLayerRule>,
    #[arg(long, help = nowt::config::key_help("shortcut"), value_parser = name::<nowt::layers::Shortcut>)]
    pub shortcut: Option<nowt::layers::Shortcut>,
    #[arg(long, help = nowt::config::key_help("init"), value_parser = name::<nowt::params::Init>)]
    pub init: Option<nowt::params::Init>,
    #[command(flatten)]
    pub knobs: RuleKnobs,
    /// Also print a progress line every N training steps (0: only per epoch).
    #[arg(long, value_parser = count::<usize>, allow_negative_numbers = true, default_value_t = 0)]
    pub log_every: usize,
    #[arg(long, help = nowt::config::key_help("divergence_loss_factor"))]
    pub divergence_loss_factor: Option<f64>,
    #[arg(long, help = nowt::config::key_help("divergence_weight_factor"))]
    pub divergence_weight_factor: Option<f64>,
    #[arg(long, help = nowt::config::key_help("allow_divergence"))]
    pub allow_divergence: bool,
    #[arg(long, help = nowt::config::key_help("tensorboard"))]
    pub tensorboard: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model: mlp, lenet5, lenet-biotorch, resnet20, resnet32, resnet56 (CIFAR), resnet18,
    /// resnet34, resnet50 (ImageNet), or a description file (my.toml; it gets 3×S×S images, S
    /// from --image-size).
    #[arg(long, default_value = "mlp", value_parser = model)]
    pub model: nowt::config::Model,
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
    /// The SGD learning rate (the peer's 0.05; the steps train on one random batch again and
    /// again, which a network without batch norm can overshoot into non-finite values under
    /// the learned-feedback rules — LeNet at 0.05 — and a diverged step is not timed).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
}
