//! What a run *is* on disk, for every front end (the `nowt` binary and the Python module): a
//! directory holding its resolved `config.toml`, `provenance.json`, one `metrics.jsonl` record
//! per epoch, checkpoints under `checkpoints/` and, once finished, `summary.txt` and
//! `summary.json`. [`start`] trains a fresh run in its directory, [`resume`] continues one from
//! its newest checkpoint; both report through a [`Progress`] callback, which may ask the run to
//! stop: it then checkpoints and ends as [`Finish::Stopped`], resumable. This layer never prints;
//! the front ends do.
//!
//! With several ranks ([`crate::dist`]) every rank calls the same function; rank 0 alone writes
//! the run's files, and decisions that end the loop (a stop request, a failed write) are taken
//! by all ranks together.

pub mod config_file;
pub mod provenance;
pub mod tensorboard;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

pub use config_file::{ConfigFile, Reference, PRESETS};
pub use provenance::{init_from, Extension, InitFrom, Origin, Provenance};

use crate::config::TrainConfig;
use crate::data::{Image, Split};
use crate::dist::{self, Collective};
use crate::train::{ControlFlow, EpochRecord, Event, Outcome, Summary, TrainState};

/// The checkpoint of the epoch selected on the validation split, in `checkpoints/`.
pub const BEST: &str = "ckpt-best.safetensors";

/// The records of `probe_every`, in a run's directory.
pub const PROBES: &str = "probes.jsonl";

/// How a run is driven, whichever front end starts it.
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    /// A checkpoint every N steps as well as at every epoch's end (0: epochs only).
    pub checkpoint_every: usize,
    /// Checkpoints kept besides the best one (at least 1).
    pub keep_checkpoints: usize,
    /// Start from this checkpoint's weights (`--init-from`).
    pub init_from: Option<PathBuf>,
    /// On resume: the data's new location, a new number of epochs, and a new number of
    /// threads (a run's values do not depend on it, so a run can move to a machine with more
    /// or fewer cores).
    pub data_dir: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub threads: Option<usize>,
    /// Steps between the step-loss scalars of TensorBoard files (0: none), and the front ends'
    /// progress lines.
    pub log_every: usize,
    /// What started the run, for `provenance.json`.
    pub origin: Origin,
}

/// What a run reports while it trains. Answering [`ControlFlow::Break`] to a step or an epoch
/// stops the run after checkpointing it.
pub enum Progress<'a> {
    /// The rule's warm-up of `B` (`batches` noise batches before the first step) has run `done`
    /// of them (0: it starts). Asked to stop here, the run stops with its warm-up undone (no
    /// checkpoint of it is written; the next start runs it whole).
    WarmUp { done: usize, batches: usize },
    /// Training starts (or resumes) at `epoch` (0-based, finished epochs) and `step` of it;
    /// the warm-up took `warmup_seconds` (0 without one).
    Started {
        epochs: usize,
        steps_per_epoch: usize,
        epoch: usize,
        step: usize,
        warmup_seconds: f64,
    },
    /// A training step finished (`epoch` and `step` 1-based).
    Step {
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
        loss: f64,
        images_per_s: f64,
    },
    /// Epoch `epoch`'s (1-based) steps are done and it is being evaluated (test and validation
    /// splits, the layers' angles): nothing else is reported until its record.
    Evaluating { epoch: usize },
    /// An epoch finished; its record is in `metrics.jsonl` already.
    Epoch { record: &'a EpochRecord },
    /// Noise pre-training measured the layers after `record.step` of its `steps` steps (the
    /// record is in `pretrain.jsonl` already).
    Pretrain {
        record: &'a crate::train::PretrainRecord,
        steps: usize,
    },
    /// The layers measured within training (every `probe_every` steps and before the first;
    /// the record is in `probes.jsonl` already).
    Probe {
        record: &'a crate::train::ProbeRecord,
    },
    /// Something the user should know that does not stop the run (a skipped checkpoint).
    Warning(String),
}

/// The callback a run reports to.
pub type Observer<'a> = dyn FnMut(Progress) -> ControlFlow<()> + Send + 'a;

/// How [`start`] or [`resume`] ended.
#[derive(Debug)]
pub enum Finish {
    /// Every epoch ran; the summary is written.
    Finished(Box<Summary>),
    /// The observer asked to stop; the run is checkpointed and can be resumed.
    Stopped,
}

/// The config a front end's keys describe (the Python module's keyword arguments, as a TOML
/// table shaped like `config.toml`): the config file's (or preset's) config for the rule the
/// keys name (else the file's own rule, overrides applied), every key on top (sections merged
/// key by key), the data directory made absolute, validated, and the thread count resolved.
pub fn resolve_keys(file: Option<&ConfigFile>, keys: &toml::Table) -> Result<TrainConfig> {
    let rule = match keys.get("rule") {
        None => None,
        Some(toml::Value::String(name)) => Some(crate::rules::RuleKind::from_name(name)?),
        Some(other) => {
            return Err(
                crate::Error::config("rule", format!("must be a rule's name, got {other}")).into(),
            )
        }
    };
    let base = match file {
        Some(f) => f.for_rule(rule)?,
        None => TrainConfig::default(),
    };
    let mut table = toml::Table::try_from(&base).context("cannot serialise a config")?;
    config_file::merge(&mut table, keys);
    // Read back from text, so an error's span names the key (`rules.wm.sigmaa`).
    let text = toml::to_string(&table).context("cannot serialise a config")?;
    let mut c: TrainConfig = toml::from_str(&text).map_err(|e| {
        let key = e
            .span()
            .map_or_else(|| "configuration".into(), |s| key_at(&text, s.start));
        crate::Error::config(&key, e.message().trim().to_string())
    })?;
    if let Some(d) = c.data_dir.clone().or_else(|| c.dataset.default_dir()) {
        c.data_dir = Some(absolute(&d));
    }
    c.validate()?;
    c.threads = c.resolved_threads();
    Ok(c)
}

/// The dotted key written at byte `at` of TOML `text`: the line's key under the nearest section
/// header above it (`rules.wm` + `sigmaa`).
fn key_at(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split('=').next().unwrap_or("").trim();
    let section = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
        .map(str::trim);
    match (section, key.is_empty() || key.starts_with('[')) {
        (_, true) => section.unwrap_or("configuration").to_string(),
        (Some(s), false) => format!("{s}.{key}"),
        (None, false) => key.to_string(),
    }
}

/// A directory held by the process writing it: an OS advisory lock on `<dir>/.lock` (which
/// records the holder's pid), released when this is dropped or the process ends in any way.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Locks `dir` for this process, or refuses at once, naming the process that holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(".lock");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "{}: another process (pid {}) is writing it; wait for that one to end, or choose another directory",
                dir.display(),
                holder.trim()
            );
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(anyhow::Error::from(e).context(format!("cannot lock {}", path.display())))
        }
    }
    file.set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(DirLock { _file: file })
}

/// A run directory's config (its `config.toml`).
pub fn read_config(path: &Path) -> Result<TrainConfig> {
    ConfigFile::read(path)?.for_rule(None)
}

/// `p` as an absolute path (against the current directory; not resolving links).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether two configs describe the same run, apart from where its data and directory are and
/// how many epochs it is to last (which a resume may change).
fn same_training(a: &TrainConfig, b: &TrainConfig) -> bool {
    let strip = |c: &TrainConfig| TrainConfig {
        out: None,
        data_dir: None,
        epochs: 0,
        threads: 0,
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// Whole seconds since the Unix epoch (0 if the clock is before it): what new run and
/// comparison directories are named by.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh run directory, created: the config's `out` (which must be absent or empty), or a new
/// one under `runs/` named after the dataset, model, rule, seed and time.
pub fn new_dir(c: &TrainConfig) -> Result<PathBuf> {
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
            let t = unix_seconds();
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

/// The dataset `cfg` names, checked against its model.
pub fn load_data(cfg: &TrainConfig) -> Result<Split> {
    let data = crate::data::load(cfg.dataset, cfg.data_dir.as_deref(), &cfg.load_options())
        .with_context(|| format!("cannot load dataset {}", cfg.dataset.name()))?;
    cfg.model_parts(data.train.shape, data.train.classes)?;
    Ok(data)
}

/// The dataset `cfg` names, which must fit the model of checkpoint `path`.
pub fn load_data_for(
    cfg: &TrainConfig,
    path: &Path,
    input: Image,
    classes: usize,
) -> Result<Split> {
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

/// Trains `cfg` from scratch in `dir` (which exists and holds no other run), writing its
/// resolved `config.toml` and `provenance.json` first.
pub fn start(
    mut cfg: TrainConfig,
    data: &Split,
    dir: &Path,
    opts: &RunOpts,
    world: &dyn Collective,
    observe: &mut Observer,
) -> Result<Finish> {
    cfg.out = Some(dir.to_path_buf());
    // The starting point first: a checkpoint that does not load or fit leaves nothing written.
    let mut state = TrainState::new(&cfg, data.train.shape, data.train.classes);
    state.input_norm = data.norm.clone();
    let started_from = match &opts.init_from {
        Some(from) => {
            init_from(&mut state, from, data)?;
            Some(InitFrom::of(from)?)
        }
        None => None,
    };
    let _lock = (world.rank() == 0).then(|| lock_dir(dir)).transpose()?;
    if world.rank() == 0 {
        let toml_text = toml::to_string(&cfg).context("cannot serialise the resolved config")?;
        fs::write(dir.join("config.toml"), toml_text)
            .with_context(|| format!("cannot write {}/config.toml", dir.display()))?;
        let mut prov = Provenance::now(&cfg, data, &opts.origin);
        prov.init_from = started_from;
        prov.write(dir)?;
        for w in cfg.without_effect() {
            let _ = observe(Progress::Warning(w));
        }
    }
    drive(&cfg, data, dir, state, opts, world, observe)
}

/// The newest checkpoint under `dir/checkpoints` that loads (warning about any that does not).
fn newest_checkpoint(
    dir: &Path,
    observe: &mut Observer,
) -> Result<(PathBuf, TrainConfig, TrainState, Image, usize)> {
    let ckpt_dir = dir.join("checkpoints");
    for path in crate::checkpoint::list(&ckpt_dir) {
        match crate::checkpoint::load(&path) {
            Ok((cfg, state, input, classes)) => return Ok((path, cfg, state, input, classes)),
            Err(e) => {
                let _ = observe(Progress::Warning(format!("skipping checkpoint: {e}")));
            }
        }
    }
    bail!(
        "--resume {}: no valid checkpoint in {}",
        dir.display(),
        ckpt_dir.display()
    )
}

/// The run's config as it continues: the checkpoint's, with `config.toml`'s epochs, data
/// location and threads, then `opts`' new ones; and the changes made, for `provenance.json`.
fn resumed_config(
    dir: &Path,
    path: &Path,
    cfg: TrainConfig,
    state: &TrainState,
    opts: &RunOpts,
) -> Result<(TrainConfig, serde_json::Map<String, serde_json::Value>)> {
    let run_cfg = read_config(&dir.join("config.toml"))?;
    if !same_training(&run_cfg, &cfg) {
        bail!(
            "{}: its config differs from {}/config.toml: a checkpoint of another run",
            path.display(),
            dir.display()
        );
    }
    // config.toml is the run's current config; --data-dir, --epochs and --threads change it.
    let mut cfg = TrainConfig {
        epochs: run_cfg.epochs,
        data_dir: run_cfg.data_dir.clone(),
        threads: run_cfg.threads,
        ..cfg
    };
    let mut changes = serde_json::Map::new();
    if let Some(d) = &opts.data_dir {
        cfg.data_dir = Some(absolute(d));
        changes.insert("data_dir".into(), serde_json::json!(cfg.data_dir));
    }
    if let Some(n) = opts.epochs {
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
    if let Some(n) = opts.threads {
        let was = cfg.threads;
        cfg.threads = n;
        cfg.threads = cfg.resolved_threads();
        if cfg.threads != was {
            changes.insert("threads".into(), serde_json::json!([was, cfg.threads]));
        }
    }
    if state.epoch == cfg.epochs && state.step == 0 && dir.join("summary.json").exists() {
        bail!(
            "--resume {}: the run has finished its {} epochs; give --epochs N to extend it",
            dir.display(),
            cfg.epochs
        );
    }
    Ok((cfg, changes))
}

/// Continues the run in `dir` from its newest checkpoint that loads, on the data its config
/// names (or `data`, which must be the data it trained on). Returns the run's config as it
/// continued, and how it ended.
pub fn resume(
    dir: &Path,
    opts: &RunOpts,
    data: Option<&Split>,
    world: &dyn Collective,
    observe: &mut Observer,
) -> Result<(TrainConfig, Finish)> {
    if !dir.is_dir() {
        bail!("--resume {}: no such run directory", dir.display());
    }
    let _lock = (world.rank() == 0).then(|| lock_dir(dir)).transpose()?;
    let (path, cfg, mut state, input, classes) = newest_checkpoint(dir, observe)?;
    let (cfg, changes) = resumed_config(dir, &path, cfg, &state, opts)?;
    let loaded;
    let data = match data {
        Some(d) => d,
        None => {
            loaded = load_data_for(&cfg, &path, input, classes)?;
            &loaded
        }
    };
    if state.input_norm.is_empty() {
        state.input_norm = data.norm.clone();
    }
    // Rank 0 checks the data's identity and rewrites the run's records; the others read.
    if world.rank() == 0 {
        let resumed = ResumedFrom {
            dir,
            checkpoint: &path,
            cfg: &cfg,
            data,
            changes,
            epochs_kept: state.epoch,
            step: state.step,
            origin: &opts.origin,
        };
        resumed.rewrite_records(observe)?;
    }
    let finish = drive(&cfg, data, dir, state, opts, world, observe)?;
    Ok((cfg, finish))
}

/// A resume's effect on the run's records.
struct ResumedFrom<'a> {
    dir: &'a Path,
    checkpoint: &'a Path,
    cfg: &'a TrainConfig,
    data: &'a Split,
    changes: serde_json::Map<String, serde_json::Value>,
    /// Epochs the checkpoint has finished (the metrics records kept), and steps of the next.
    epochs_kept: usize,
    step: usize,
    origin: &'a Origin,
}

impl ResumedFrom<'_> {
    /// Checks the data's identity against `provenance.json`, records this process there, writes
    /// a changed config and drops the summary it invalidates, and drops the metrics and probe
    /// records written after the checkpoint (they are written again).
    fn rewrite_records(self, observe: &mut Observer) -> Result<()> {
        let dir = self.dir;
        let prov_path = dir.join("provenance.json");
        let mut prov: Option<Provenance> = fs::read_to_string(&prov_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let print = self.data.fingerprint();
        match &prov {
            Some(p) if p.data_fingerprint != print => bail!(
                "--resume {}: the data at {} is not the data this run trained on (fingerprint {print}, the run's {})",
                dir.display(),
                self.cfg
                    .data_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "its default location".into()),
                p.data_fingerprint
            ),
            Some(_) => {}
            None => {
                let _ = observe(Progress::Warning(format!(
                    "{} has no provenance.json (a run from before nowt recorded one): the data's identity is not checked",
                    dir.display()
                )));
            }
        }
        if !self.changes.is_empty() {
            // The run's record of its configuration follows the change; a finished run extended
            // writes its summary again at its new end.
            let toml_text = toml::to_string(self.cfg).context("cannot serialise the config")?;
            crate::checkpoint::write_atomic(&dir.join("config.toml"), |w| {
                w.write_all(toml_text.as_bytes())
            })?;
            for f in ["summary.json", "summary.txt"] {
                let _ = fs::remove_file(dir.join(f));
            }
        }
        if let Some(p) = prov.as_mut() {
            let now = Provenance::now(self.cfg, self.data, self.origin);
            p.resumed.push(serde_json::json!({
                "command": now.command,
                "git_commit": now.git_commit,
                "cpu": now.cpu,
                "from": self.checkpoint.display().to_string(),
                "at": { "epoch": self.epochs_kept, "step": self.step },
                "changes": self.changes,
            }));
            p.write(dir)?;
        }
        // The epochs' records of the finished epochs, and the probes' up to the checkpoint's
        // step (finished epochs, steps of the next).
        let mut epochs = 0;
        keep_lines(&dir.join("metrics.jsonl"), |_| {
            epochs += 1;
            epochs <= self.epochs_kept
        })?;
        let at = (self.epochs_kept, self.step);
        let probes = dir.join(PROBES);
        if probes.exists() {
            keep_lines(&probes, |l| {
                serde_json::from_str::<crate::train::ProbeRecord>(l)
                    .is_ok_and(|r| (r.epoch - 1, r.step) <= at)
            })?;
        }
        Ok(())
    }
}

/// Rewrites the JSON-lines file at `path` (an absent one as empty) with the lines `keep` says
/// to keep, in order.
fn keep_lines(path: &Path, mut keep: impl FnMut(&str) -> bool) -> Result<()> {
    let kept: String = fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| keep(l))
        .map(|l| format!("{l}\n"))
        .collect();
    crate::checkpoint::write_atomic(path, |w| w.write_all(kept.as_bytes()))?;
    Ok(())
}

/// Writes a checkpoint of `st` under `<dir>/checkpoints/` and keeps only the newest `keep`.
fn checkpoint(
    dir: &Path,
    cfg: &TrainConfig,
    st: &TrainState,
    input: Image,
    classes: usize,
    keep: usize,
) -> Result<()> {
    let ckpt_dir = dir.join("checkpoints");
    fs::create_dir_all(&ckpt_dir)
        .with_context(|| format!("cannot create {}", ckpt_dir.display()))?;
    let path = ckpt_dir.join(crate::checkpoint::file_name(st.epoch, st.step));
    crate::checkpoint::save(&path, cfg, st, input, classes).context("cannot write checkpoint")?;
    for old in crate::checkpoint::list(&ckpt_dir)
        .into_iter()
        .skip(keep.max(1))
    {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// A training loop's writes to its run directory, made by rank 0 and agreed on by every rank:
/// an error on rank 0 stops every rank (none waits for the others).
struct Writer<'a> {
    dir: &'a Path,
    cfg: &'a TrainConfig,
    input: Image,
    classes: usize,
    keep: usize,
    world: &'a dyn Collective,
    /// `metrics.jsonl`, open for appending (rank 0 only).
    metrics: Option<BufWriter<fs::File>>,
    /// TensorBoard's event file, with `tensorboard = true` (rank 0 only).
    tb: Option<tensorboard::EventWriter>,
}

impl<'a> Writer<'a> {
    fn open(
        dir: &'a Path,
        cfg: &'a TrainConfig,
        data: &Split,
        keep: usize,
        world: &'a dyn Collective,
    ) -> Result<Self> {
        let metrics_path = dir.join("metrics.jsonl");
        let metrics = if world.rank() == 0 {
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .with_context(|| format!("cannot open {}", metrics_path.display()))?;
            Some(BufWriter::new(file))
        } else {
            None
        };
        let tb = match cfg.tensorboard && world.rank() == 0 {
            true => Some(tensorboard::EventWriter::create(dir)?),
            false => None,
        };
        Ok(Self {
            dir,
            cfg,
            input: data.train.shape,
            classes: data.train.classes,
            keep,
            world,
            metrics,
            tb,
        })
    }

    /// `written` on rank 0, agreed: an error on any rank is an error on every rank.
    fn agreed(&self, written: Result<()>) -> Result<()> {
        match (dist::any(self.world, written.is_err()), written) {
            (true, Ok(())) => Err(anyhow!("rank 0 could not write it")),
            (_, w) => w,
        }
    }

    /// A checkpoint of `st`, after every rank checked that the ranks hold the same `W` and `B`.
    fn checkpoint(&self, st: &TrainState) -> Result<()> {
        let written = match dist::differing_layer(self.world, &st.net) {
            Some(layer) => Err(anyhow!(
                "the ranks' W or B of layer {layer} differ at epoch {}, step {}",
                st.epoch + 1,
                st.step
            )),
            None if self.world.rank() == 0 => {
                checkpoint(self.dir, self.cfg, st, self.input, self.classes, self.keep)
            }
            None => Ok(()),
        };
        self.agreed(written)
            .map_err(|e| e.context("cannot write the checkpoint"))
    }

    /// The epoch's record appended to `metrics.jsonl` (and to the TensorBoard file).
    fn record(&mut self, record: &EpochRecord) -> Result<()> {
        let line = serde_json::to_string(record).expect("records serialise");
        let written = match self.metrics.as_mut() {
            Some(m) => writeln!(m, "{line}").and_then(|_| m.flush()).map_err(|e| {
                anyhow::Error::from(e).context(format!(
                    "cannot write {}",
                    self.dir.join("metrics.jsonl").display()
                ))
            }),
            None => Ok(()),
        };
        let written = match (written, self.tb.as_mut()) {
            (Ok(()), Some(tb)) => tb.epoch(record),
            (w, _) => w,
        };
        self.agreed(written)
    }

    /// Appends a noise pre-training record to `pretrain.jsonl`, which the phase's first
    /// record starts afresh: a phase replayed after a stop is written once.
    fn pretrain_record(&mut self, record: &crate::train::PretrainRecord) -> Result<()> {
        self.append("pretrain.jsonl", record, record.step == 0)
    }

    /// Appends a probe record to `probes.jsonl`; the record before the first step starts the
    /// file afresh.
    fn probe_record(&mut self, record: &crate::train::ProbeRecord) -> Result<()> {
        self.append(PROBES, record, record.global_step == 0)
    }

    /// `record` as a line of JSON at the end of the run's file `name` (rank 0), or as its only
    /// line where it is the `first`.
    fn append(&mut self, name: &str, record: &impl serde::Serialize, first: bool) -> Result<()> {
        let path = self.dir.join(name);
        let written = if self.world.rank() == 0 {
            let line = serde_json::to_string(record).expect("records serialise");
            fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(!first)
                .truncate(first)
                .open(&path)
                .and_then(|mut f| writeln!(f, "{line}"))
                .with_context(|| format!("cannot write {}", path.display()))
        } else {
            Ok(())
        };
        self.agreed(written)
    }

    /// The training loss at global step `step`, for TensorBoard (every rank calls it at the
    /// same steps).
    fn step_loss(&mut self, step: usize, loss: f64) -> Result<()> {
        let written = match self.tb.as_mut() {
            Some(tb) => tb.step_loss(step, loss),
            None => Ok(()),
        };
        self.agreed(written)
    }

    /// The checkpoint of the epoch chosen on validation so far, kept beside the newest ones.
    fn best(&self, st: &TrainState, epoch: usize) -> Result<()> {
        let best = self.dir.join("checkpoints").join(BEST);
        let mut written = Ok(());
        if self.world.rank() == 0 && st.selected.is_some_and(|(_, e, _)| e == epoch) {
            written = fs::create_dir_all(self.dir.join("checkpoints"))
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    crate::checkpoint::save(&best, self.cfg, st, self.input, self.classes)
                        .map_err(anyhow::Error::from)
                });
        }
        self.agreed(written)
            .map_err(|e| e.context(format!("cannot write {}", best.display())))
    }
}

/// [`train_and_record`], and a run that fails (diverges, cannot write its files) says why in
/// `failed.txt` in its directory, as a comparison's runs do; a resume clears an old one.
fn drive(
    cfg: &TrainConfig,
    data: &Split,
    dir: &Path,
    state: TrainState,
    opts: &RunOpts,
    world: &dyn Collective,
    observe: &mut Observer,
) -> Result<Finish> {
    let failed = dir.join(crate::compare::FAILED);
    let leads = world.rank() == 0;
    if leads {
        let _ = fs::remove_file(&failed);
    }
    let result = train_and_record(cfg, data, dir, state, opts, world, observe);
    if let (Err(e), true) = (&result, leads) {
        let _ = fs::write(&failed, format!("{e:#}\n"));
    }
    result
}

/// Trains from `state`, appending to `metrics.jsonl`, checkpointing as asked and at every
/// epoch's end, and writing the summary at the end.
fn train_and_record(
    cfg: &TrainConfig,
    data: &Split,
    dir: &Path,
    mut state: TrainState,
    opts: &RunOpts,
    world: &dyn Collective,
    observe: &mut Observer,
) -> Result<Finish> {
    let mut files = Writer::open(dir, cfg, data, opts.keep_checkpoints, world)?;
    let mut failure: Option<anyhow::Error> = None;
    let mut steps_per_epoch = 1usize;
    let result = crate::train::train_from_on(cfg, data, &mut state, world, &mut |ev| match ev {
        Event::WarmUp { done, batches } => {
            let asked = observe(Progress::WarmUp { done, batches });
            if dist::any(world, asked.is_break()) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        Event::Started {
            epochs,
            steps_per_epoch: per_epoch,
            state,
        } => {
            steps_per_epoch = per_epoch;
            let _ = observe(Progress::Started {
                epochs,
                steps_per_epoch,
                epoch: state.epoch,
                step: state.step,
                warmup_seconds: state.warmup_seconds,
            });
            ControlFlow::Continue(())
        }
        Event::Step {
            epoch,
            step,
            loss,
            images_per_s,
            state,
        } => {
            let asked = observe(Progress::Step {
                epoch,
                step,
                steps_per_epoch,
                loss,
                images_per_s,
            });
            if dist::any(world, asked.is_break()) {
                let _ = files.checkpoint(state);
                return ControlFlow::Break(());
            }
            let global_step = state.epoch * steps_per_epoch + state.step;
            if cfg.tensorboard
                && opts.log_every > 0
                && step % opts.log_every == 0
                && stop_or_fail(files.step_loss(global_step, loss), &mut failure).is_break()
            {
                return ControlFlow::Break(());
            }
            if opts.checkpoint_every > 0 && global_step.is_multiple_of(opts.checkpoint_every) {
                return stop_or_fail(files.checkpoint(state), &mut failure);
            }
            ControlFlow::Continue(())
        }
        Event::Evaluating { epoch } => {
            let _ = observe(Progress::Evaluating { epoch });
            ControlFlow::Continue(())
        }
        Event::Pretrain { record, steps } => {
            if stop_or_fail(files.pretrain_record(record), &mut failure).is_break() {
                return ControlFlow::Break(());
            }
            let asked = observe(Progress::Pretrain { record, steps });
            if dist::any(world, asked.is_break()) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        Event::Probe { record } => {
            if stop_or_fail(files.probe_record(record), &mut failure).is_break() {
                return ControlFlow::Break(());
            }
            let asked = observe(Progress::Probe { record });
            if dist::any(world, asked.is_break()) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        Event::Epoch { record, state } => {
            let written = files
                .record(record)
                .and_then(|()| files.best(state, record.epoch))
                .and_then(|()| files.checkpoint(state));
            if stop_or_fail(written, &mut failure).is_break() {
                return ControlFlow::Break(());
            }
            let asked = observe(Progress::Epoch { record });
            if dist::any(world, asked.is_break()) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = failure {
        return Err(e.context(stopped(dir)));
    }
    match result.with_context(|| stopped(dir))? {
        Outcome::Finished(summary) => {
            if world.rank() == 0 {
                write_summary(cfg, &summary, dir)?;
            }
            Ok(Finish::Finished(summary))
        }
        Outcome::Stopped => Ok(Finish::Stopped),
    }
}

/// Goes on after `r`, or stops with its error kept in `failure`.
fn stop_or_fail(r: Result<()>, failure: &mut Option<anyhow::Error>) -> ControlFlow<()> {
    match r {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            *failure = Some(e);
            ControlFlow::Break(())
        }
    }
}

/// `summary.txt`, then `summary.json` (written whole or not at all: it marks a finished run).
fn write_summary(cfg: &TrainConfig, summary: &Summary, dir: &Path) -> Result<()> {
    let text = summary_text(cfg, summary, dir);
    fs::write(dir.join("summary.txt"), &text)
        .with_context(|| format!("cannot write {}/summary.txt", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    crate::checkpoint::write_atomic(&dir.join("summary.json"), |w| w.write_all(json.as_bytes()))
        .with_context(|| format!("cannot write {}/summary.json", dir.display()))?;
    Ok(())
}

/// What a stopped run leaves: its last good checkpoint, if it wrote one.
fn stopped(dir: &Path) -> String {
    if crate::checkpoint::list(&dir.join("checkpoints")).is_empty() {
        format!("run {} stopped before its first checkpoint", dir.display())
    } else {
        format!(
            "run {} stopped; its last good checkpoint is kept",
            dir.display()
        )
    }
}

/// `x` as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// An angle in degrees with one decimal, or `–` where there is none.
pub fn deg(x: Option<f64>) -> String {
    x.map(|d| format!("{d:.1}°")).unwrap_or_else(|| "–".into())
}

/// One screen of text at the end of a run (`summary.txt`).
pub fn summary_text(cfg: &TrainConfig, s: &Summary, dir: &Path) -> String {
    let r = &s.last;
    let mut t = String::new();
    let arch = match cfg.model.builtin() {
        Some(crate::config::ModelKind::Mlp) => {
            format!("mlp {:?} {}", cfg.hidden, cfg.activation.name())
        }
        Some(_) => cfg.model.name().to_string(),
        None => format!("{} (described)", cfg.model.name()),
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
    // Where it came from (provenance.json): the checkpoint it started from, its extensions.
    let prov: Option<Provenance> = fs::read_to_string(dir.join("provenance.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    for line in prov.iter().flat_map(Provenance::lineage) {
        t += &format!("  {line}\n");
    }
    t += &pretrain_line(cfg, dir);
    t += &format!(
        "  final test: top-1 err {}{}  loss {:.4}\n",
        pct(r.test.top1_err),
        r.test
            .top5_err
            .map(|e| format!("  top-5 err {}", pct(e)))
            .unwrap_or_default(),
        r.test.loss,
    );
    t += &selection_line(s);
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
    t += &layer_table(r);
    let warmup = match s.warmup_seconds {
        Some(w) if w > 0.0 => format!(", {w:.1} s of it the rule's warm-up"),
        _ => String::new(),
    };
    t += &format!(
        "  {:.1} s in all{warmup}, {:.0} train images/s in the last epoch ({:.1} s of it waiting for data)\n",
        s.total_seconds, r.images_per_s, r.data_wait_s
    );
    t
}

/// The summary's line on noise pre-training (`pretrain.jsonl`): its steps and every layer's
/// `∠(W, M)` before and after, the alignment it is for; empty without one.
fn pretrain_line(cfg: &TrainConfig, dir: &Path) -> String {
    let records: Vec<crate::train::PretrainRecord> = fs::read_to_string(dir.join("pretrain.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (Some(first), Some(last), true) = (
        records.first(),
        records.last(),
        cfg.pretrain_noise_steps > 0,
    ) else {
        return String::new();
    };
    let angles: Vec<String> = first
        .layers
        .iter()
        .zip(&last.layers)
        .filter_map(|(before, after)| {
            let (a, b) = (before.weight_angle_deg?, after.weight_angle_deg?);
            Some(format!(
                "{} {} → {}",
                after.layer,
                deg(Some(a)),
                deg(Some(b))
            ))
        })
        .collect();
    format!(
        "  noise pre-training: {} steps ({:.1} s); ∠(W,M) {}\n",
        last.step,
        last.seconds,
        angles.join(", ")
    )
}

/// The summary's line on model selection.
fn selection_line(s: &Summary) -> String {
    match &s.selected {
        Some(sel) => format!(
            "  selected on validation: epoch {} (val top-1 err {}), test top-1 err there {}  (checkpoints/{BEST})\n",
            sel.epoch,
            pct(sel.val_top1_err),
            pct(sel.test_top1_err)
        ),
        None => format!(
            "  no model selection (no validation split; --val-fraction makes one): lowest test top-1 err seen {} at epoch {}\n",
            pct(s.best_test_top1_err),
            s.best_epoch
        ),
    }
}

/// The per-layer alignment table of an epoch record.
fn layer_table(r: &EpochRecord) -> String {
    let w = r
        .layers
        .iter()
        .map(|l| l.layer.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut t = format!(
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
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_locked_directory_refuses_a_second_writer_naming_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_dir(tmp.path()).unwrap();
        let e = format!("{:#}", lock_dir(tmp.path()).unwrap_err());
        let pid = std::process::id();
        assert!(
            e.contains(&format!("another process (pid {pid}) is writing it")),
            "{e}"
        );
        drop(held);
        lock_dir(tmp.path()).unwrap();
    }

    #[test]
    fn resolved_keys_go_over_the_file_and_errors_name_the_key() {
        let file =
            ConfigFile::parse("lr = 0.1\nepochs = 3\n[overrides.fa]\nlr = 0.001\n", "t").unwrap();
        let c = resolve_keys(Some(&file), &keys("rule = 'fa'\nepochs = 5")).unwrap();
        assert_eq!(
            (c.rule, c.lr, c.epochs),
            (crate::rules::RuleKind::FeedbackAlignment, 0.001, 5)
        );
        let c = resolve_keys(None, &keys("[rules.wm]\nlr = 0.05")).unwrap();
        assert_eq!((c.rules.wm.lr, c.rules.wm.sigma), (0.05, 1.0));
        let err = |t: &str| format!("{:#}", resolve_keys(None, &keys(t)).unwrap_err());
        assert!(
            err("[rules.wm]\nsigmaa = 1")
                .starts_with("invalid rules.wm.sigmaa: unknown field `sigmaa`"),
            "{}",
            err("[rules.wm]\nsigmaa = 1")
        );
        assert!(
            err("lrr = 1").starts_with("invalid lrr: unknown field `lrr`"),
            "{}",
            err("lrr = 1")
        );
        assert!(
            err("epochs = 'x'").starts_with("invalid epochs:"),
            "{}",
            err("epochs = 'x'")
        );
        assert!(err("rule = 'magic'").contains("unknown rule 'magic'"));
    }
}
