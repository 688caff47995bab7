//! `nowt train`: resolve the config, check everything, then create the run directory, train,
//! and record.

use std::fs;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nowt::config::TrainConfig;
use nowt::rules::RuleKind;
use nowt::run::ConfigFile;
use nowt::train::ControlFlow;

use crate::args::{RuleKnobs, TrainArgs};

/// `nowt presets`: the names and first lines, or one preset's TOML.
/// `nowt models`: the built-in models, or one's description as TOML.
pub fn models(a: crate::args::ModelsArgs) -> Result<()> {
    use nowt::config::ModelKind;
    if let Some(kind) = a.show {
        let d = nowt::models::builtin::describe(kind, &a.hidden, a.activation, a.shortcut);
        out!("{}", d.to_toml());
        return Ok(());
    }
    for kind in ModelKind::ALL {
        outln!("{:<16} {}", kind.name(), kind.summary());
    }
    outln!(
        "(nowt models --show NAME prints one's layers: save, edit, and train with --model FILE)"
    );
    Ok(())
}

pub fn presets(show: Option<&str>) -> Result<()> {
    if let Some(name) = show {
        out!("{}", ConfigFile::preset(name)?.text);
        return Ok(());
    }
    for (name, text) in nowt::run::PRESETS {
        outln!("{name:<24} {}", preset_summary(text));
    }
    Ok(())
}

/// A preset's leading comment up to its first `:` or sentence end outside parentheses (what it
/// is, before the details), without the parenthesised asides when that is over 90 characters.
fn preset_summary(text: &str) -> String {
    let lead: Vec<&str> = text
        .lines()
        .map_while(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect();
    let para = lead.join(" ");
    let (mut depth, mut end) = (0i32, para.len());
    for (i, c) in para.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => {
                end = i;
                break;
            }
            '.' if depth == 0 && para[i + 1..].starts_with(' ') => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let head = para[..end].trim();
    if head.chars().count() <= 90 {
        return head.to_string();
    }
    let (mut out, mut depth) = (String::new(), 0);
    for c in head.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints the rule table: each rule's names, summary and knobs.
pub fn list_rules() {
    let width = NAME_WIDTH;
    for k in RuleKind::ALL {
        let info = k.info();
        outln!(
            "{:<width$} {:<8} {}",
            info.name,
            info.aliases.join(","),
            info.summary
        );
        for knob in info.knobs {
            outln!(
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
    use nowt::config::{Model, ModelKind};
    let mut models: Vec<Model> = Vec::new();
    for choice in a.model {
        let add = match choice {
            ModelChoice::All => ModelKind::ALL.map(Model::from).to_vec(),
            ModelChoice::One(m) => vec![m],
        };
        for m in add {
            if !models.contains(&m) {
                models.push(m);
            }
        }
    }
    if models.is_empty() {
        models = nowt::check::DEFAULT_MODELS.map(Model::from).to_vec();
    }
    let rules = if a.rule.is_empty() {
        RuleKind::ALL.to_vec()
    } else {
        a.rule
    };
    warn_threads(a.threads);
    let pool = thread_pool(a.threads)?;
    pool.install(|| run_checks(&models, &rules))
}

/// Runs and prints every check of `models` × `rules`, then the laws; an error if any failed.
fn run_checks(models: &[nowt::config::Model], rules: &[RuleKind]) -> Result<()> {
    let start = std::time::Instant::now();
    let mut failed = 0;
    let cfg = nowt::rules::RuleConfig::default();
    // Model by model, so that lines appear as checks finish.
    for model in models {
        for o in nowt::check::model_checks(model, rules, &cfg)? {
            failed += usize::from(!o.passed);
            print_outcome(&o);
        }
    }
    for o in nowt::check::laws(rules, &cfg) {
        failed += usize::from(!o.passed);
        print_outcome(&o);
    }
    let secs = start.elapsed().as_secs_f64();
    if failed > 0 {
        bail!("nowt check: {failed} check(s) failed ({secs:.1} s)");
    }
    outln!("all checks passed ({secs:.1} s)");
    Ok(())
}

fn print_outcome(o: &nowt::check::Outcome) {
    outln!(
        "{}  {:<9} {:<NAME_WIDTH$} {:<12} {}",
        if o.passed { "PASS" } else { "FAIL" },
        o.model,
        o.rule.map_or("-", |r| r.name()),
        o.check,
        o.detail
    );
}

/// Reads a run's `config.toml` (or any config file, for its own rule).
pub use nowt::run::read_config;
use nowt::run::{absolute, deg, pct, Finish, Progress};

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
    set!(probe_every = a.probe_every);
    set!(bias_init = a.bias_init);
    set!(init_alignment = a.init_alignment);
    set!(pretrain_noise_steps = a.pretrain_noise_steps);
    set!(pretrain_noise = a.pretrain_noise);
    set!(pretrain_noise_std = a.pretrain_noise_std);
    set!(pretrain_labels = a.pretrain_labels);
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
    if a.tensorboard {
        c.tensorboard = true;
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
    crate::world::check_build(&c)?;
    c.threads = c.resolved_threads();
    warn_threads(c.threads);
    Ok(c)
}

/// The pool a command's `--threads` asks for (0: one thread per core).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("--threads")
}

/// A warning when `threads` exceeds the machine's cores: the extra threads only take turns
/// (a 0.1 s digits run took 43.6 s at `--threads 1000` on 2 cores).
pub fn warn_threads(threads: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > cores {
        errln!(
            "nowt: warning: --threads {threads} is more than this machine's {cores} cores; \
             the extra threads only slow the run down"
        );
    }
}

/// Ctrl-C (SIGINT), SIGTERM or SIGHUP (a dropped terminal): the run stopped cleanly after
/// checkpointing. Exit code 130, 143 or 129 (128 + the signal), as shells and cluster
/// schedulers expect.
#[derive(Debug)]
pub struct Interrupted(pub u8);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The error a run stopped by a signal ends with (its exit code 128 + the signal).
pub fn interrupted() -> anyhow::Error {
    Interrupted(STOP.load(Ordering::SeqCst).clamp(1, 255) as u8).into()
}

/// Set by SIGINT (to 130), SIGTERM (to 143) or SIGHUP (to 129); the training loop checkpoints and stops at the
/// next step.
static STOP: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// Routes SIGINT, SIGTERM and SIGHUP to [`STOP`] (once per process).
fn catch_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (sig, code) in [
            (signal_hook::consts::SIGINT, 130),
            (signal_hook::consts::SIGTERM, 143),
            (signal_hook::consts::SIGHUP, 129),
        ] {
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&STOP), code);
        }
    });
}

/// How the CLI drives a run: the library's options and how the run is shown.
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    pub run: nowt::run::RunOpts,
    pub quiet: bool,
}

impl RunOpts {
    pub fn of(a: &TrainArgs) -> Self {
        Self {
            run: nowt::run::RunOpts {
                checkpoint_every: a.checkpoint_every,
                keep_checkpoints: a.keep_checkpoints,
                init_from: a.init_from.clone(),
                data_dir: a.data_dir.clone(),
                epochs: a.epochs,
                threads: a.threads,
                log_every: a.log_every,
                origin: origin(),
            },
            // Only rank 0 prints.
            quiet: a.quiet || !crate::world::leads(),
        }
    }
}

/// This process: its command line and the commit the binary was built from.
pub fn origin() -> nowt::run::Origin {
    nowt::run::Origin {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        git_commit: env!("NOWT_GIT_COMMIT").into(),
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
            threads: None,
            ..(*a).clone()
        };
        if plain != TrainArgs::default() {
            bail!(
                "--resume {}: the run's own configuration is used; drop the other training flags (only --data-dir, --epochs and --threads may change)",
                dir.display()
            );
        }
        return resume(dir, &RunOpts::of(&a));
    }
    check_rule_flags(&a)?;
    let cfg = resolve(&a)?;
    let world = crate::world::get();
    // The default run directory's parent, `runs/`, if this start is the one that makes it.
    let made_runs = (cfg.out.is_none() && !Path::new("runs").exists()).then_some("runs");
    let dir = match (&cfg.out, world.size()) {
        (_, 1) => nowt::run::new_dir(&cfg)?,
        (None, k) => bail!(
            "{k} ranks: give --out DIR, the one run directory every rank names (rank 0 writes it)"
        ),
        (Some(d), _) if world.rank() == 0 => nowt::run::new_dir(&cfg).map(|_| d.clone())?,
        (Some(d), _) => d.clone(),
    };
    if !a.quiet && world.rank() == 0 {
        errln!("nowt: run {}", dir.display());
    }
    // A start refused before anything was written (the data, an --init-from checkpoint) leaves
    // no empty run directory (or `runs/`) behind; `remove_dir` leaves one that has files.
    let tidy = |_: &anyhow::Error| {
        let _ = fs::remove_dir(&dir);
        if let Some(runs) = made_runs {
            let _ = fs::remove_dir(runs);
        }
    };
    let data = load_data_logged(&cfg, a.quiet || world.rank() != 0).inspect_err(tidy)?;
    start(cfg, &data, &dir, &RunOpts::of(&a)).inspect_err(tidy)
}

/// Trains `cfg` from scratch in `dir` (which exists and holds no other run), showing its
/// progress.
pub fn start(cfg: TrainConfig, data: &nowt::data::Split, dir: &Path, opts: &RunOpts) -> Result<()> {
    let epochs = cfg.epochs;
    let mut shown = Shown::new(opts, epochs, String::new());
    let finish = nowt::run::start(
        cfg.clone(),
        data,
        dir,
        &opts.run,
        crate::world::get(),
        &mut |p| shown.on(p),
    );
    shown.bar.finish_and_clear();
    ended(&cfg, dir, finish?)
}

/// Continues the run in `dir` from its newest checkpoint that loads, showing its progress.
pub fn resume(dir: &Path, opts: &RunOpts) -> Result<()> {
    let epochs = opts
        .run
        .epochs
        .or_else(|| read_config(&dir.join("config.toml")).ok().map(|c| c.epochs))
        .unwrap_or(0);
    let mut shown = Shown::new(opts, epochs, String::new());
    let mut announced = false;
    let result = nowt::run::resume(dir, &opts.run, None, crate::world::get(), &mut |p| {
        if matches!(p, Progress::Started { .. }) && !announced && !opts.quiet {
            announced = true;
            errln!("nowt: resuming {}", dir.display());
        }
        shown.on(p)
    });
    shown.bar.finish_and_clear();
    let (cfg, finish) = result?;
    ended(&cfg, dir, finish)
}

/// After a run ends: its summary printed (rank 0), or how to continue a stopped one.
fn ended(cfg: &TrainConfig, dir: &Path, finish: Finish) -> Result<()> {
    match finish {
        Finish::Finished(summary) => {
            if crate::world::leads() {
                out!("{}", nowt::run::summary_text(cfg, &summary, dir));
            }
            Ok(())
        }
        Finish::Stopped => {
            let by = match STOP.load(Ordering::SeqCst) {
                143 => "SIGTERM",
                129 => "SIGHUP",
                _ => "interrupted",
            };
            if nowt::checkpoint::list(&dir.join("checkpoints")).is_empty() {
                // Stopped in the warm-up or noise pre-training, which restart whole.
                errln!(
                    "nowt: {by} before the run's first checkpoint (its warm-up or noise \
                     pre-training is redone on a new start); nothing in {} to resume",
                    dir.display()
                );
            } else {
                errln!(
                    "nowt: {by}; checkpoint saved. Continue with: nowt train --resume {}",
                    dir.display()
                );
            }
            Err(interrupted())
        }
    }
}

/// A run's progress on the terminal: a bar (or, off a terminal, plain lines), a line per
/// epoch, warnings; and the signals that stop it.
pub struct Shown<'a> {
    opts: &'a RunOpts,
    /// Put before the progress bar's message and each line (`compare` names the run).
    label: String,
    epochs: usize,
    pub bar: ProgressBar,
    /// Off a terminal (nohup, `| tee`, a batch scheduler) the bar is hidden: plain lines instead.
    plain: bool,
    prev_loss: Option<f64>,
}

impl<'a> Shown<'a> {
    pub fn new(opts: &'a RunOpts, epochs: usize, label: String) -> Self {
        catch_signals();
        let bar = if opts.quiet {
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
        Self {
            opts,
            label,
            epochs,
            bar,
            plain: !opts.quiet && !std::io::stderr().is_terminal(),
            prev_loss: None,
        }
    }

    fn say(&self, line: String) {
        if self.opts.quiet {
        } else if self.plain {
            errln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn on(&mut self, p: Progress) -> ControlFlow<()> {
        let label = &self.label;
        match p {
            Progress::WarmUp { done, batches } => {
                if done == 0 {
                    self.say(format!(
                        "{label}warming up B: {batches} noise batches before the first step"
                    ));
                    self.bar.set_length(batches as u64);
                    self.bar.set_message(format!("{label}warming up B"));
                }
                self.bar.set_position(done as u64);
                if STOP.load(Ordering::SeqCst) != 0 {
                    return ControlFlow::Break(());
                }
            }
            Progress::Started {
                epochs,
                steps_per_epoch,
                epoch,
                step,
                warmup_seconds,
            } => {
                if warmup_seconds > 0.0 && epoch == 0 && step == 0 {
                    self.say(format!("{label}warm-up done in {warmup_seconds:.1} s"));
                }
                self.epochs = epochs;
                self.bar.set_length((epochs * steps_per_epoch) as u64);
                self.bar
                    .set_position((epoch * steps_per_epoch + step) as u64);
            }
            Progress::Step {
                epoch,
                step,
                steps_per_epoch,
                loss,
                images_per_s,
            } => {
                self.bar.inc(1);
                let every = self.opts.run.log_every;
                if every > 0 && step % every == 0 {
                    self.say(format!(
                        "{label}epoch {epoch} step {step}/{steps_per_epoch}  loss {loss:.4}  {images_per_s:.0} img/s"
                    ));
                }
                self.bar.set_message(format!(
                    "{label}epoch {epoch}  loss {loss:.4}  {images_per_s:.0} img/s"
                ));
                if STOP.load(Ordering::SeqCst) != 0 {
                    return ControlFlow::Break(());
                }
            }
            Progress::Evaluating { epoch } => {
                // On a terminal the bar says so; off one, a line where step lines are asked for.
                let what = format!("{label}epoch {epoch}: evaluating");
                if self.plain && self.opts.run.log_every > 0 {
                    self.say(what);
                } else {
                    self.bar.set_message(what);
                }
            }
            Progress::Epoch { record } => {
                let mut line = format!("{label}{}", epoch_line(record, self.epochs));
                line += &loss_rise(self.prev_loss, record.train.loss, record.epoch);
                self.prev_loss = Some(record.train.loss);
                self.say(line);
            }
            Progress::Pretrain { record, steps } => {
                self.say(format!("{label}{}", pretrain_line(record, steps)));
                if STOP.load(Ordering::SeqCst) != 0 {
                    return ControlFlow::Break(());
                }
            }
            // In probes.jsonl; the bar goes on with the steps.
            Progress::Probe { .. } => {}
            Progress::Warning(w) => errln!("nowt: warning: {w}"),
        }
        ControlFlow::Continue(())
    }
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

/// [`nowt::run::load_data`], saying so first unless `quiet` (decoding a large dataset takes a
/// while).
pub fn load_data_logged(cfg: &TrainConfig, quiet: bool) -> Result<nowt::data::Split> {
    if !quiet {
        errln!("nowt: loading {}", cfg.dataset.name());
    }
    nowt::run::load_data(cfg)
}

/// `nowt eval`: a checkpoint's loss and error on a dataset's test split.
pub fn eval(a: crate::args::EvalArgs) -> Result<()> {
    let checkpoint = nowt::checkpoint::resolve(&a.checkpoint)?;
    let (mut cfg, mut state, input, classes) = nowt::checkpoint::load(&checkpoint)?;
    if let Some(d) = a.dataset {
        cfg.dataset = d;
    }
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir.clone();
    }
    if let Some(n) = a.test_limit {
        cfg.test_limit = n;
    }
    let data = nowt::run::load_data_for(&cfg, &checkpoint, input, classes)?;
    let pool = thread_pool(a.threads)?;
    let ev = pool.install(|| nowt::train::evaluate(&mut state.net, &data.test))?;
    outln!(
        "{}: {} test, {} samples: top-1 err {}{}  loss {:.4}  (trained {} epochs + {} steps under {})",
        checkpoint.display(),
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

/// A noise pre-training line: its step, the mean loss on noise since the last line, and the
/// output layer's and the mean over the layers of `∠(W, M)`, the alignment it is for.
fn pretrain_line(r: &nowt::train::PretrainRecord, steps: usize) -> String {
    let angles: Vec<f64> = r.layers.iter().filter_map(|l| l.weight_angle_deg).collect();
    let mean = (!angles.is_empty()).then(|| angles.iter().sum::<f64>() / angles.len() as f64);
    let loss = r.loss.map_or("–".to_string(), |l| format!("{l:.4}"));
    format!(
        "noise pre-training {:>5}/{steps}  loss {loss}  out ∠(W,M) {}  mean ∠(W,M) {}  {:.1}s",
        r.step,
        deg(r.layers.last().and_then(|l| l.weight_angle_deg)),
        deg(mean),
        r.seconds
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
                    "dfa-spread" | "drtp-spread" => ("true", toml::Value::from(true)),
                    k if k.ends_with("batch-size")
                        || k.ends_with("batches")
                        || k.ends_with("per-step")
                        || k.ends_with("expand") =>
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
