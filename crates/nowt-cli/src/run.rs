//! `nowt train`: resolve the config, check everything, then create the run directory, train,
//! and record.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nowt::config::TrainConfig;
use nowt::rules::RuleKind;
use nowt::train::{ControlFlow, Event, Outcome, Summary, TrainState};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use crate::args::{RuleKnobs, TrainArgs};
use crate::config_file::ConfigFile;
use crate::provenance::{init_from, Provenance};

/// Prints the rule table: each rule's names, summary and knobs.
pub fn list_rules() {
    let width = NAME_WIDTH;
    for k in RuleKind::ALL {
        let info = k.info();
        println!(
            "{:<width$} {:<8} {}",
            info.name,
            info.aliases.join(","),
            info.summary
        );
        for knob in info.knobs {
            println!(
                "{:<indent$} --{} (rules.{}): {}",
                "",
                knob.flag,
                knob.key,
                knob.doc,
                indent = width + 9
            );
        }
    }
}

/// The longest rule name: the width of the rule column in `nowt rules` and `nowt check`.
const NAME_WIDTH: usize = {
    let mut w = 0;
    let mut i = 0;
    while i < nowt::rules::REGISTRY.len() {
        let n = nowt::rules::REGISTRY[i].name.len();
        if n > w {
            w = n;
        }
        i += 1;
    }
    w
};

/// `nowt check`: one PASS/FAIL line per check; an error (exit 1) if any failed.
pub fn check(a: crate::args::CheckArgs) -> Result<()> {
    use crate::args::ModelChoice;
    use nowt::config::ModelKind::{self, *};
    let mut models: Vec<ModelKind> = Vec::new();
    for choice in a.model {
        let add = match choice {
            ModelChoice::All => ModelKind::ALL.to_vec(),
            ModelChoice::One(m) => vec![m],
        };
        for m in add {
            if !models.contains(&m) {
                models.push(m);
            }
        }
    }
    if models.is_empty() {
        models = vec![Mlp, Lenet5, Resnet20, Resnet18];
    }
    let rules = if a.rule.is_empty() {
        RuleKind::ALL.to_vec()
    } else {
        a.rule
    };
    let start = std::time::Instant::now();
    let mut failed = 0;
    let cfg = nowt::rules::RuleConfig::default();
    // Model by model, so that lines appear as checks finish.
    for model in models {
        for o in nowt::check::model_checks(model, &rules, &cfg) {
            failed += usize::from(!o.passed);
            print_outcome(&o);
        }
    }
    for o in nowt::check::laws(&rules, &cfg) {
        failed += usize::from(!o.passed);
        print_outcome(&o);
    }
    let secs = start.elapsed().as_secs_f64();
    if failed > 0 {
        bail!("nowt check: {failed} check(s) failed ({secs:.1} s)");
    }
    println!("all checks passed ({secs:.1} s)");
    Ok(())
}

fn print_outcome(o: &nowt::check::Outcome) {
    println!(
        "{}  {:<9} {:<NAME_WIDTH$} {:<12} {}",
        if o.passed { "PASS" } else { "FAIL" },
        o.model,
        o.rule.map_or("-", |r| r.name()),
        o.check,
        o.detail
    );
}

/// Reads a run's `config.toml` (or any config file, for its own rule).
pub fn read_config(path: &Path) -> Result<TrainConfig> {
    ConfigFile::read(path)?.for_rule(None)
}

/// The config file or preset the flags name, if any.
pub fn config_file(a: &TrainArgs) -> Result<Option<ConfigFile>> {
    match (&a.config, &a.preset) {
        (Some(_), Some(_)) => bail!("--config and --preset: give one or the other"),
        (Some(p), None) => Ok(Some(ConfigFile::read(p)?)),
        (None, Some(n)) => Ok(Some(ConfigFile::preset(n)?)),
        (None, None) => Ok(None),
    }
}

/// The file's config (or the defaults) with every given flag applied on top.
pub fn resolve(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match config_file(a)? {
        Some(f) => f.for_rule(a.rule)?,
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($($field:ident).+ = $flag:expr) => {
            if let Some(v) = $flag.clone() {
                c.$($field).+ = v;
            }
        };
    }
    set!(rule = a.rule);
    set!(model = a.model);
    set!(hidden = a.hidden);
    set!(activation = a.activation);
    set!(dataset = a.dataset);
    set!(epochs = a.epochs);
    set!(batch_size = a.batch_size);
    set!(lr = a.lr);
    set!(optimizer = a.optimizer);
    set!(adam_beta1 = a.adam_beta1);
    set!(adam_beta2 = a.adam_beta2);
    set!(adam_eps = a.adam_eps);
    set!(momentum = a.momentum);
    set!(weight_decay = a.weight_decay);
    set!(schedule = a.schedule);
    set!(milestones = a.milestones);
    set!(gamma = a.gamma);
    set!(warmup_epochs = a.warmup_epochs);
    set!(seed = a.seed);
    set!(threads = a.threads);
    set!(val_fraction = a.val_fraction);
    set!(probe_size = a.probe_size);
    set!(image_size = a.image_size);
    set!(train_limit = a.train_limit);
    set!(test_limit = a.test_limit);
    set!(data_threads = a.data_threads);
    c.rules = with_knobs(&c.rules, &a.knobs)?;
    set!(output_layer_rule = a.output_layer_rule);
    set!(init = a.init);
    set!(shortcut = a.shortcut);
    set!(divergence_loss_factor = a.divergence_loss_factor);
    set!(divergence_weight_factor = a.divergence_weight_factor);
    if a.allow_divergence {
        c.allow_divergence = true;
    }
    if a.data_dir.is_some() {
        c.data_dir = a.data_dir.clone();
    }
    // Recorded as an absolute path, so the run can be resumed from any directory.
    if let Some(d) = c.data_dir.clone().or_else(|| c.dataset.default_dir()) {
        c.data_dir = Some(absolute(&d));
    }
    if a.out.is_some() {
        c.out = a.out.clone();
    }
    if a.decay_all {
        c.decay_all = true;
    }
    if a.nesterov {
        c.nesterov = true;
    }
    if a.augment {
        c.augment = true;
    }
    if a.sync_bn {
        c.sync_bn = true;
    }
    let from = match (&a.config, &a.preset) {
        (Some(p), _) => format!(" (flag or {})", p.display()),
        (_, Some(n)) => format!(" (flag or preset {n})"),
        _ => String::new(),
    };
    c.validate()
        .with_context(|| format!("bad configuration{from}"))?;
    c.threads = c.resolved_threads();
    Ok(c)
}

/// `p` as an absolute path (against the current directory; not resolving links).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether two configs describe the same run, apart from where its data and directory are and
/// how many epochs it is to last (which `--resume` may change).
fn same_training(a: &TrainConfig, b: &TrainConfig) -> bool {
    let strip = |c: &TrainConfig| TrainConfig {
        out: None,
        data_dir: None,
        epochs: 0,
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// A fresh run directory: the one asked for (which must be absent or empty), or a new one
/// under `runs/`.
fn run_dir(c: &TrainConfig) -> Result<PathBuf> {
    let dir = match &c.out {
        Some(d) => {
            if d.exists()
                && fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                bail!("--out {}: already exists and is not an empty directory; choose a new run directory", d.display());
            }
            d.clone()
        }
        None => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let base = format!(
                "runs/{}-{}-{}-s{}-{t}",
                c.dataset.name(),
                c.model.name(),
                c.rule.alias(),
                c.seed
            );
            let mut dir = PathBuf::from(&base);
            let mut k = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{base}-{k}"));
                k += 1;
            }
            dir
        }
    };
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create run directory {}", dir.display()))?;
    Ok(dir)
}

/// Ctrl-C (SIGINT) or SIGTERM: the run stopped cleanly after checkpointing. Exit code 130 or
/// 143 (128 + the signal), as shells and cluster schedulers expect.
#[derive(Debug)]
pub struct Interrupted(pub u8);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Set by SIGINT (to 130) or SIGTERM (to 143); the training loop checkpoints and stops at the
/// next step.
static STOP: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// Routes SIGINT and SIGTERM to [`STOP`] (once per process).
fn catch_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (sig, code) in [
            (signal_hook::consts::SIGINT, 130),
            (signal_hook::consts::SIGTERM, 143),
        ] {
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&STOP), code);
        }
    });
}

/// How a run is driven, whichever command starts it.
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    pub checkpoint_every: usize,
    pub keep_checkpoints: usize,
    pub quiet: bool,
    /// A plain progress line every N steps (0: none).
    pub log_every: usize,
    /// Put before the progress bar's message (`compare` names the rule and seed).
    pub label: String,
    /// Start from this checkpoint's weights (`--init-from`).
    pub init_from: Option<PathBuf>,
    /// On resume: the data's new location, and a new number of epochs.
    pub data_dir: Option<PathBuf>,
    pub epochs: Option<usize>,
}

impl RunOpts {
    pub fn of(a: &TrainArgs) -> Self {
        Self {
            checkpoint_every: a.checkpoint_every,
            keep_checkpoints: a.keep_checkpoints,
            // Only rank 0 prints.
            quiet: a.quiet || !crate::world::leads(),
            log_every: a.log_every,
            label: String::new(),
            init_from: a.init_from.clone(),
            data_dir: a.data_dir.clone(),
            epochs: a.epochs,
        }
    }
}

pub fn train(a: Box<TrainArgs>) -> Result<()> {
    if let Some(dir) = &a.resume {
        let plain = TrainArgs {
            resume: None,
            quiet: false,
            checkpoint_every: 0,
            keep_checkpoints: 0,
            log_every: 0,
            data_dir: None,
            epochs: None,
            ..(*a).clone()
        };
        if plain != TrainArgs::default() {
            bail!(
                "--resume {}: the run's own configuration is used; drop the other training flags (only --data-dir and --epochs may change)",
                dir.display()
            );
        }
        return resume(dir, &RunOpts::of(&a));
    }
    check_rule_flags(&a)?;
    let cfg = resolve(&a)?;
    let world = crate::world::get();
    let dir = match (&cfg.out, world.size()) {
        (_, 1) => run_dir(&cfg)?,
        (None, k) => bail!(
            "{k} ranks: give --out DIR, the one run directory every rank names (rank 0 writes it)"
        ),
        (Some(d), _) if world.rank() == 0 => run_dir(&cfg).map(|_| d.clone())?,
        (Some(d), _) => d.clone(),
    };
    if !a.quiet && world.rank() == 0 {
        eprintln!("nowt: run {}", dir.display());
    }
    let data = load_data_logged(&cfg, a.quiet || world.rank() != 0).inspect_err(|_| {
        // Nothing was written yet: leave no empty run directory behind.
        let _ = fs::remove_dir(&dir);
    })?;
    start(cfg, &data, &dir, &RunOpts::of(&a))
}

/// Trains `cfg` from scratch in `dir` (which exists and holds no other run), writing its
/// resolved `config.toml` and `provenance.json` first.
pub fn start(
    mut cfg: TrainConfig,
    data: &nowt::data::Split,
    dir: &Path,
    opts: &RunOpts,
) -> Result<()> {
    cfg.out = Some(dir.to_path_buf());
    if crate::world::leads() {
        let toml_text = toml::to_string(&cfg).context("cannot serialise the resolved config")?;
        fs::write(dir.join("config.toml"), toml_text)
            .with_context(|| format!("cannot write {}/config.toml", dir.display()))?;
        Provenance::now(&cfg, data).write(dir)?;
    }
    let mut state = TrainState::new(&cfg, data.train.shape, data.train.classes);
    if let Some(from) = &opts.init_from {
        init_from(&mut state, from, data)?;
    }
    drive(&cfg, data, dir, state, opts)
}

/// `rules` with every knob flag applied: each value is read as a TOML value, else as a number
/// (`.5`), else as a string (`zero`), and set at its key, and the result type-checked, so a
/// flag takes exactly what its config key takes.
fn with_knobs(
    rules: &nowt::rules::RuleConfig,
    knobs: &RuleKnobs,
) -> Result<nowt::rules::RuleConfig> {
    if knobs.0.is_empty() {
        return Ok(rules.clone());
    }
    let mut table = toml::Table::try_from(rules).context("cannot serialise the rules' config")?;
    for k in &knobs.0 {
        let value = toml::from_str::<toml::Table>(&format!("v = {}", k.value))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .or_else(|| k.value.parse::<f64>().ok().map(toml::Value::Float))
            .unwrap_or_else(|| toml::Value::String(k.value.clone()));
        let mut path: Vec<&str> = k.key.split('.').collect();
        let last = path.pop().expect("a knob's key is not empty");
        let mut at = &mut table;
        for part in path {
            at = at
                .get_mut(part)
                .and_then(toml::Value::as_table_mut)
                .with_context(|| format!("rules.{}: no such section", k.key))?;
        }
        at.insert(last.to_string(), value);
        // Type-check each flag alone, so the error names it.
        toml::Value::Table(table.clone())
            .try_into::<nowt::rules::RuleConfig>()
            .map_err(|e| anyhow!("invalid --{} {}: {}", k.flag, k.value, e.message()))?;
    }
    Ok(toml::Value::Table(table).try_into()?)
}

/// Rule knobs given as flags for a rule that is not the one trained are mistakes, not no-ops.
fn check_rule_flags(a: &TrainArgs) -> Result<()> {
    let rule = match (a.rule, config_file(a)?) {
        (Some(r), _) => r,
        (None, Some(f)) => f.for_rule(None)?.rule,
        (None, None) => TrainConfig::default().rule,
    };
    for owner in RuleKind::ALL.into_iter().filter(|&k| k != rule) {
        let flags: Vec<String> = a
            .knobs
            .0
            .iter()
            .filter(|k| k.rule == owner)
            .map(|k| format!("--{}", k.flag))
            .collect();
        if !flags.is_empty() {
            bail!(
                "{} only apply to rule {}, and this run trains under {}: drop them or change --rule",
                flags.join(", "),
                owner.name(),
                rule.name()
            );
        }
    }
    Ok(())
}

/// [`load_data`], saying so first unless `quiet` (decoding a large dataset takes a while).
pub fn load_data_logged(cfg: &TrainConfig, quiet: bool) -> Result<nowt::data::Split> {
    if !quiet {
        eprintln!("nowt: loading {}", cfg.dataset.name());
    }
    load_data(cfg)
}

/// The dataset `cfg` names.
pub fn load_data(cfg: &TrainConfig) -> Result<nowt::data::Split> {
    let data = nowt::data::load(cfg.dataset, cfg.data_dir.as_deref(), &cfg.load_options())
        .with_context(|| format!("cannot load dataset {}", cfg.dataset.name()))?;
    cfg.model.check_input(data.train.shape)?;
    Ok(data)
}

/// The dataset `cfg` names, which must fit the model of checkpoint `path`.
fn load_data_for(
    cfg: &TrainConfig,
    path: &Path,
    input: nowt::data::Image,
    classes: usize,
) -> Result<nowt::data::Split> {
    let data = load_data(cfg)?;
    if (data.train.shape, data.train.classes) != (input, classes) {
        bail!(
            "{}: the model takes inputs of {input:?} and {classes} classes, dataset {} has {:?} and {}",
            path.display(),
            cfg.dataset.name(),
            data.train.shape,
            data.train.classes
        );
    }
    Ok(data)
}

/// Continues the run in `dir` from its newest checkpoint that loads.
pub fn resume(dir: &Path, a: &RunOpts) -> Result<()> {
    let ckpt_dir = dir.join("checkpoints");
    let mut found = None;
    for path in nowt::checkpoint::list(&ckpt_dir) {
        match nowt::checkpoint::load(&path) {
            Ok(c) => {
                found = Some((path, c));
                break;
            }
            Err(e) => eprintln!("nowt: warning: skipping checkpoint: {e}"),
        }
    }
    let Some((path, (cfg, state, input, classes))) = found else {
        bail!(
            "--resume {}: no valid checkpoint in {}",
            dir.display(),
            ckpt_dir.display()
        );
    };
    let run_cfg = read_config(&dir.join("config.toml"))?;
    if !same_training(&run_cfg, &cfg) {
        bail!(
            "{}: its config differs from {}/config.toml: a checkpoint of another run",
            path.display(),
            dir.display()
        );
    }
    // config.toml is the run's current config; --data-dir and --epochs change it.
    let mut cfg = TrainConfig {
        epochs: run_cfg.epochs,
        data_dir: run_cfg.data_dir.clone(),
        ..cfg
    };
    let mut changes = serde_json::Map::new();
    if let Some(d) = &a.data_dir {
        cfg.data_dir = Some(absolute(d));
        changes.insert("data_dir".into(), serde_json::json!(cfg.data_dir));
    }
    if let Some(n) = a.epochs {
        if n < state.epoch || (n == state.epoch && state.step > 0) {
            bail!(
                "--epochs {n}: the run has already trained {} epochs{}",
                state.epoch,
                if state.step > 0 {
                    " and part of the next"
                } else {
                    ""
                }
            );
        }
        if n != cfg.epochs {
            changes.insert("epochs".into(), serde_json::json!([cfg.epochs, n]));
        }
        cfg.epochs = n;
    }
    if state.epoch == cfg.epochs && state.step == 0 && dir.join("summary.json").exists() {
        bail!(
            "--resume {}: the run has finished its {} epochs; give --epochs N to extend it",
            dir.display(),
            cfg.epochs
        );
    }
    let data = load_data_for(&cfg, &path, input, classes)?;
    // Rank 0 checks the data's identity and rewrites the run's records; the others read.
    if crate::world::leads() {
        // The data's identity must match the run's, wherever it now lives.
        let prov_path = dir.join("provenance.json");
        let mut prov: Option<Provenance> = fs::read_to_string(&prov_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let print = data.fingerprint();
        match &prov {
            Some(p) if p.data_fingerprint != print => bail!(
                "--resume {}: the data at {} is not the data this run trained on (fingerprint {print}, the run's {})",
                dir.display(),
                cfg.data_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "its default location".into()),
                p.data_fingerprint
            ),
            Some(_) => {}
            None => eprintln!(
                "nowt: warning: {} has no provenance.json (a run from before nowt recorded one): the data's identity is not checked",
                dir.display()
            ),
        }
        if !changes.is_empty() {
            // The run's record of its configuration follows the change; a finished run extended
            // writes its summary again at its new end.
            let toml_text = toml::to_string(&cfg).context("cannot serialise the config")?;
            nowt::checkpoint::write_atomic(&dir.join("config.toml"), |w| {
                w.write_all(toml_text.as_bytes())
            })?;
            for f in ["summary.json", "summary.txt"] {
                let _ = fs::remove_file(dir.join(f));
            }
        }
        if let Some(p) = prov.as_mut() {
            let now = Provenance::now(&cfg, &data);
            p.resumed.push(serde_json::json!({
                "command": now.command,
                "git_commit": now.git_commit,
                "cpu": now.cpu,
                "from": path.display().to_string(),
                "changes": changes,
            }));
            p.write(dir)?;
        }
        // Epoch records written after the checkpoint are written again.
        let metrics = dir.join("metrics.jsonl");
        let kept: String = fs::read_to_string(&metrics)
            .unwrap_or_default()
            .lines()
            .take(state.epoch)
            .map(|l| format!("{l}\n"))
            .collect();
        nowt::checkpoint::write_atomic(&metrics, |w| w.write_all(kept.as_bytes()))?;
    }
    if !a.quiet {
        eprintln!("nowt: resuming {} from {}", dir.display(), path.display());
    }
    drive(&cfg, &data, dir, state, a)
}

/// Writes a checkpoint of `st` under `<dir>/checkpoints/` and keeps only the newest `keep`.
fn checkpoint(
    dir: &Path,
    cfg: &TrainConfig,
    st: &TrainState,
    input: nowt::data::Image,
    classes: usize,
    keep: usize,
) -> Result<()> {
    let ckpt_dir = dir.join("checkpoints");
    fs::create_dir_all(&ckpt_dir)
        .with_context(|| format!("cannot create {}", ckpt_dir.display()))?;
    let path = ckpt_dir.join(nowt::checkpoint::file_name(st.epoch, st.step));
    nowt::checkpoint::save(&path, cfg, st, input, classes).context("cannot write checkpoint")?;
    for old in nowt::checkpoint::list(&ckpt_dir)
        .into_iter()
        .skip(keep.max(1))
    {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// Trains from `state`, appending to `metrics.jsonl` and checkpointing as asked.
fn drive(
    cfg: &TrainConfig,
    data: &nowt::data::Split,
    dir: &Path,
    mut state: TrainState,
    a: &RunOpts,
) -> Result<()> {
    catch_signals();
    let (input, classes) = (data.train.shape, data.train.classes);
    let world = crate::world::get();
    let leads = world.rank() == 0;
    let metrics_path = dir.join("metrics.jsonl");
    // Rank 0 alone writes the run's files.
    let mut metrics = if leads {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .with_context(|| format!("cannot open {}", metrics_path.display()))?;
        Some(BufWriter::new(file))
    } else {
        None
    };

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise}<{eta_precise}]",
        )
        .expect("static template"),
    );
    // Off a terminal (nohup, `| tee`, a batch scheduler) the bar is hidden: plain lines instead.
    let plain = !a.quiet && !std::io::stderr().is_terminal();
    let say = |line: String| {
        if plain {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut prev_loss = state.last.as_ref().map(|r| r.train.loss);
    let mut failure: Option<anyhow::Error> = None;
    let mut steps_per_epoch = 1usize;
    let result = nowt::train::train_from_on(cfg, data, &mut state, world, &mut |ev| {
        // Every rank checks at every checkpoint that the ranks hold the same W and B.
        let mut save = |st: &TrainState| {
            let written = match crate::world::differing_layer(&st.net) {
                Some(layer) => Err(anyhow!(
                    "the ranks' W or B of layer {layer} differ at epoch {}, step {}",
                    st.epoch + 1,
                    st.step
                )),
                None if leads => checkpoint(dir, cfg, st, input, classes, a.keep_checkpoints),
                None => Ok(()),
            };
            // If rank 0 could not write, every rank stops (none waits for the others).
            let written = match (crate::world::any(written.is_err()), written) {
                (true, Ok(())) => Err(anyhow!("rank 0 could not write the checkpoint")),
                (_, w) => w,
            };
            match written {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        };
        match ev {
            Event::Started {
                epochs,
                steps_per_epoch: per_epoch,
                state,
            } => {
                bar.set_length((epochs * per_epoch) as u64);
                bar.set_position((state.epoch * per_epoch + state.step) as u64);
                steps_per_epoch = per_epoch;
                ControlFlow::Continue(())
            }
            Event::Step {
                epoch,
                step,
                loss,
                images_per_s,
                state,
            } => {
                bar.inc(1);
                if a.log_every > 0 && !a.quiet && step % a.log_every == 0 {
                    say(format!(
                        "{}epoch {epoch} step {step}/{steps_per_epoch}  loss {loss:.4}  {images_per_s:.0} img/s",
                        a.label
                    ));
                }
                bar.set_message(format!(
                    "{}epoch {epoch}  loss {loss:.4}  {images_per_s:.0} img/s",
                    a.label
                ));
                if crate::world::any(STOP.load(Ordering::SeqCst) != 0) {
                    let _ = save(state);
                    return ControlFlow::Break(());
                }
                let global_step = state.epoch * steps_per_epoch + state.step;
                if a.checkpoint_every > 0 && global_step.is_multiple_of(a.checkpoint_every) {
                    return save(state);
                }
                ControlFlow::Continue(())
            }
            Event::Epoch { record, state } => {
                let line = serde_json::to_string(record).expect("records serialise");
                let written = match metrics.as_mut() {
                    Some(m) => writeln!(m, "{line}").and_then(|_| m.flush()),
                    None => Ok(()),
                };
                let written = match (crate::world::any(written.is_err()), written) {
                    (true, Ok(())) => Err(std::io::Error::other("rank 0 could not write it")),
                    (_, w) => w,
                };
                if let Err(e) = written {
                    failure = Some(
                        anyhow::Error::new(e)
                            .context(format!("cannot write {}", metrics_path.display())),
                    );
                    return ControlFlow::Break(());
                }
                let mut line = format!("{}{}", a.label, epoch_line(record, cfg.epochs));
                line += &loss_rise(prev_loss, record.train.loss, record.epoch);
                prev_loss = Some(record.train.loss);
                if !a.quiet {
                    say(line);
                }
                // The epoch chosen on validation so far: kept beside the newest ones.
                let best = dir.join("checkpoints").join(BEST);
                let mut written = Ok(());
                if leads && state.selected.is_some_and(|(_, e, _)| e == record.epoch) {
                    written = fs::create_dir_all(dir.join("checkpoints"))
                        .map_err(anyhow::Error::from)
                        .and_then(|()| {
                            nowt::checkpoint::save(&best, cfg, state, input, classes)
                                .map_err(anyhow::Error::from)
                        });
                }
                if crate::world::any(written.is_err()) {
                    let e = written
                        .err()
                        .unwrap_or_else(|| anyhow!("rank 0 could not write it"));
                    failure = Some(e.context(format!("cannot write {}", best.display())));
                    return ControlFlow::Break(());
                }
                save(state)
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context(stopped(dir)));
    }
    let outcome = result.with_context(|| stopped(dir))?;
    let summary = match outcome {
        Outcome::Finished(s) => s,
        Outcome::Stopped => {
            let code = STOP.load(Ordering::SeqCst).clamp(1, 255) as u8;
            let by = if code == 143 {
                "SIGTERM"
            } else {
                "interrupted"
            };
            eprintln!(
                "nowt: {by}; checkpoint saved. Continue with: nowt train --resume {}",
                dir.display()
            );
            return Err(Interrupted(code).into());
        }
    };
    if !leads {
        return Ok(());
    }
    let text = summary_text(cfg, &summary, dir);
    // summary.txt first: summary.json, written whole or not at all, marks a finished run.
    fs::write(dir.join("summary.txt"), &text)
        .with_context(|| format!("cannot write {}/summary.txt", dir.display()))?;
    let json = serde_json::to_string_pretty(&summary)?;
    nowt::checkpoint::write_atomic(&dir.join("summary.json"), |w| w.write_all(json.as_bytes()))
        .with_context(|| format!("cannot write {}/summary.json", dir.display()))?;
    print!("{text}");
    Ok(())
}

/// The checkpoint of the epoch selected on the validation split, in `checkpoints/`.
pub const BEST: &str = "ckpt-best.safetensors";

/// What a stopped run leaves: its last good checkpoint, if it wrote one.
fn stopped(dir: &Path) -> String {
    if nowt::checkpoint::list(&dir.join("checkpoints")).is_empty() {
        format!("run {} stopped before its first checkpoint", dir.display())
    } else {
        format!(
            "run {} stopped; its last good checkpoint is kept",
            dir.display()
        )
    }
}

/// `nowt eval`: a checkpoint's loss and error on a dataset's test split.
pub fn eval(a: crate::args::EvalArgs) -> Result<()> {
    let (mut cfg, mut state, input, classes) = nowt::checkpoint::load(&a.checkpoint)?;
    if let Some(d) = a.dataset {
        cfg.dataset = d;
    }
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir.clone();
    }
    let data = load_data_for(&cfg, &a.checkpoint, input, classes)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("--threads")?;
    let ev = pool.install(|| nowt::train::evaluate(&mut state.net, &data.test))?;
    println!(
        "{}: {} test, {} samples: top-1 err {}{}  loss {:.4}  (trained {} epochs + {} steps under {})",
        a.checkpoint.display(),
        cfg.dataset.name(),
        data.test.len(),
        pct(ev.top1_err),
        ev.top5_err.map(|e| format!("  top-5 err {}", pct(e))).unwrap_or_default(),
        ev.loss,
        state.epoch,
        state.step,
        cfg.rule.name()
    );
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn deg(x: Option<f64>) -> String {
    x.map(|d| format!("{d:.1}°")).unwrap_or_else(|| "–".into())
}

fn epoch_line(r: &nowt::train::EpochRecord, epochs: usize) -> String {
    let top = r.layers.last();
    format!(
        "epoch {:>3}/{epochs}  loss {:.4}  train err {}  test err {}  out ∠(W,M) {}  {:.0} img/s  {:.1}s (data wait {:.1}s)",
        r.epoch,
        r.train.loss,
        pct(r.train.top1_err),
        pct(r.test.top1_err),
        deg(top.and_then(|l| l.weight_angle_deg)),
        r.images_per_s,
        r.seconds,
        r.data_wait_s
    )
}

/// The warning an epoch line carries when the training loss rose more than tenfold over the
/// previous epoch's (empty otherwise).
fn loss_rise(prev: Option<f64>, loss: f64, epoch: usize) -> String {
    match prev {
        Some(p) if loss > 10.0 * p => {
            format!("  ⚠ train loss ×{:.0} over epoch {}", loss / p, epoch - 1)
        }
        _ => String::new(),
    }
}

/// One screen of text at the end of a run.
pub fn summary_text(cfg: &TrainConfig, s: &Summary, dir: &Path) -> String {
    let r = &s.last;
    let mut t = String::new();
    let arch = match cfg.model {
        nowt::config::ModelKind::Mlp => format!("mlp {:?} {}", cfg.hidden, cfg.activation.name()),
        other => other.name().to_string(),
    };
    t += &format!("nowt run {}\n", dir.display());
    t += &format!(
        "  rule {}  model {arch}  dataset {}  epochs {}  batch {}  lr {}  seed {}  threads {}\n",
        cfg.rule.name(),
        cfg.dataset.name(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.seed,
        cfg.threads
    );
    t += &format!(
        "  final test: top-1 err {}{}  loss {:.4}\n",
        pct(r.test.top1_err),
        r.test
            .top5_err
            .map(|e| format!("  top-5 err {}", pct(e)))
            .unwrap_or_default(),
        r.test.loss,
    );
    match &s.selected {
        Some(sel) => {
            t += &format!(
                "  selected on validation: epoch {} (val top-1 err {}), test top-1 err there {}  (checkpoints/ckpt-best.safetensors)\n",
                sel.epoch,
                pct(sel.val_top1_err),
                pct(sel.test_top1_err)
            )
        }
        None => {
            t += &format!(
                "  no model selection (no validation split; --val-fraction makes one): lowest test top-1 err seen {} at epoch {}\n",
                pct(s.best_test_top1_err),
                s.best_epoch
            )
        }
    }
    if let Some(v) = &r.val {
        t += &format!(
            "  final val:  top-1 err {}  loss {:.4}\n",
            pct(v.top1_err),
            v.loss
        );
    }
    t += &format!(
        "  final train: loss {:.4}  top-1 err {}\n",
        r.train.loss,
        pct(r.train.top1_err)
    );
    let w = r
        .layers
        .iter()
        .map(|l| l.layer.len())
        .max()
        .unwrap_or(5)
        .max(5);
    t += &format!(
        "  {:<w$} {:>10} {:>10} {:>10} {:>10}\n",
        "layer", "∠(W,M)", "∠(δ,δbp)", "‖M‖/‖W‖", "sign agr"
    );
    for l in &r.layers {
        t += &format!(
            "  {:<w$} {:>10} {:>10} {:>10} {:>10}\n",
            l.layer,
            deg(l.weight_angle_deg),
            deg(l.delta_angle_deg),
            l.norm_ratio
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "–".into()),
            l.sign_concordance.map(pct).unwrap_or_else(|| "–".into())
        );
    }
    t += &format!(
        "  {:.1} s in all, {:.0} train images/s in the last epoch ({:.1} s of it waiting for data)\n",
        s.total_seconds, r.images_per_s, r.data_wait_s
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_lines_flag_a_loss_that_rose_tenfold() {
        assert_eq!(loss_rise(None, 50.0, 1), "");
        assert_eq!(loss_rise(Some(1.0), 9.9, 2), "");
        assert_eq!(
            loss_rise(Some(0.5), 6.0, 3),
            "  ⚠ train loss ×12 over epoch 2"
        );
        assert_eq!(
            loss_rise(Some(0.5), f64::INFINITY, 3),
            "  ⚠ train loss ×inf over epoch 2"
        );
    }

    /// Every leaf of `t` as (dotted key, value).
    fn leaves(t: &toml::Table, prefix: &str) -> Vec<(String, toml::Value)> {
        t.iter()
            .flat_map(|(k, v)| {
                let key = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(t) => leaves(t, &format!("{key}.")),
                    v => vec![(key, v.clone())],
                }
            })
            .collect()
    }

    /// Every registry knob's flag sets exactly its config key under `[rules]` and nothing else,
    /// in the type the key has (a name, an integer, or a number given as `.005` or `2e-3`).
    #[test]
    fn every_knob_flag_sets_its_config_key() {
        use clap::Parser;
        let defaults = leaves(
            &toml::Table::try_from(nowt::rules::RuleConfig::default()).unwrap(),
            "",
        );
        for owner in RuleKind::ALL {
            for knob in owner.info().knobs {
                let (value, want) = match knob.flag {
                    "ss-scale" => ("mean-abs", toml::Value::from("mean-abs")),
                    "wm-init" => ("zero", toml::Value::from("zero")),
                    "wm-noise" => ("uniform", toml::Value::from("uniform")),
                    "dfa-spread" => ("true", toml::Value::from(true)),
                    k if k.ends_with("batch-size")
                        || k.ends_with("batches")
                        || k.ends_with("per-step") =>
                    {
                        ("3", toml::Value::from(3))
                    }
                    k if k.ends_with("lr") => (".005", toml::Value::from(0.005)),
                    _ => ("2e-3", toml::Value::from(2e-3)),
                };
                let flag = format!("--{}", knob.flag);
                let argv = ["nowt", "train", "--rule", owner.alias(), &flag, value];
                let crate::args::Command::Train(a) = crate::args::Cli::parse_from(argv).command
                else {
                    unreachable!("a train command")
                };
                let got = leaves(
                    &toml::Table::try_from(resolve(&a).unwrap().rules).unwrap(),
                    "",
                );
                let changed: Vec<_> = got.iter().filter(|kv| !defaults.contains(kv)).collect();
                assert_eq!(changed, [&(knob.key.to_string(), want)], "{flag} {value}");
            }
        }
    }
}
