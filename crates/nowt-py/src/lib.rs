//! `nowt._nowt`, the native half of the `nowt` Python package: the library's run layer
//! ([`nowt::run`]) called with Python's keyword arguments, numpy arrays and callbacks. The
//! Python half (`python/nowt/__init__.py`) shapes what this returns into `Run` objects.
//!
//! Nothing here trains or writes a run its own way: a run started from Python is the run the
//! `nowt` binary makes from the same config, in the same directory layout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods, ToPyArray};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use nowt::config::TrainConfig;
use nowt::data::{Dataset, Split};
use nowt::dist::Solo;
use nowt::run::{ConfigFile, Finish, Progress, RunOpts};
use nowt::train::ControlFlow;

create_exception!(
    nowt,
    NowtError,
    PyException,
    "Any error nowt reports; the message names what is wrong."
);
create_exception!(
    nowt,
    ConfigError,
    NowtError,
    "A configuration key, value, config file or preset is wrong."
);
create_exception!(
    nowt,
    DataError,
    NowtError,
    "Data (files or arrays) missing, unreadable or of the wrong shape, dtype or labels."
);
create_exception!(
    nowt,
    DivergedError,
    NowtError,
    "Training diverged (a non-finite loss, or the loss or weights grew past their bounds)."
);
create_exception!(
    nowt,
    CheckpointError,
    NowtError,
    "A checkpoint or run directory could not be used."
);

/// The Python exception for a failure: the typed library error at its root decides the class;
/// the message is the whole context chain on one line, as the CLI prints it.
fn py_err(e: anyhow::Error) -> PyErr {
    let msg = format!("{e:#}");
    let kind = e.chain().find_map(|c| c.downcast_ref::<nowt::Error>());
    match kind {
        Some(nowt::Error::Config { .. } | nowt::Error::UnknownName { .. }) => {
            ConfigError::new_err(msg)
        }
        Some(nowt::Error::Data { .. } | nowt::Error::Io { .. }) => DataError::new_err(msg),
        Some(nowt::Error::NonFinite { .. } | nowt::Error::Diverged { .. }) => {
            DivergedError::new_err(msg)
        }
        Some(nowt::Error::Checkpoint { .. }) => CheckpointError::new_err(msg),
        None => NowtError::new_err(msg),
    }
}

/// A config-stage failure (file, preset, keys): always a `ConfigError`.
fn config_err(e: anyhow::Error) -> PyErr {
    ConfigError::new_err(format!("{e:#}"))
}

/// A Python value as a TOML value: bools, ints, floats, strings, paths (`os.PathLike`), lists
/// and tuples, dicts (sections). `None` means "not given".
fn toml_value(key: &str, v: &Bound<PyAny>) -> PyResult<Option<toml::Value>> {
    if v.is_none() {
        return Ok(None);
    }
    let value = if v.is_instance_of::<PyBool>() {
        toml::Value::Boolean(v.extract()?)
    } else if v.is_instance_of::<PyInt>() {
        toml::Value::Integer(v.extract()?)
    } else if v.is_instance_of::<PyFloat>() {
        toml::Value::Float(v.extract()?)
    } else if v.is_instance_of::<PyString>() {
        toml::Value::String(v.extract()?)
    } else if v.hasattr("__fspath__")? {
        let p: PathBuf = v.extract()?;
        toml::Value::String(p.display().to_string())
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            if let Some(x) = toml_value(key, &item?)? {
                out.push(x);
            }
        }
        toml::Value::Array(out)
    } else if let Ok(d) = v.cast::<PyDict>() {
        toml::Value::Table(toml_table(d, &format!("{key}."))?)
    } else if v.hasattr("item")? {
        // A numpy scalar: its Python value.
        return toml_value(key, &v.call_method0("item")?);
    } else {
        return Err(ConfigError::new_err(format!(
            "invalid {key}: a {} is not a config value (give a number, string, bool, list or dict)",
            v.get_type().name()?
        )));
    };
    Ok(Some(value))
}

/// Keyword arguments as a config table (`prefix` names nested sections in messages).
fn toml_table(d: &Bound<PyDict>, prefix: &str) -> PyResult<toml::Table> {
    let mut t = toml::Table::new();
    for (k, v) in d.iter() {
        let k: String = k.extract()?;
        if let Some(v) = toml_value(&format!("{prefix}{k}"), &v)? {
            t.insert(k, v);
        }
    }
    Ok(t)
}

/// The config file or preset a call names, if any.
fn config_file(config: Option<PathBuf>, preset: Option<&str>) -> PyResult<Option<ConfigFile>> {
    Ok(match (config, preset) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new_err(
                "config and preset: give one or the other",
            ))
        }
        (Some(p), None) => Some(ConfigFile::read(&p).map_err(config_err)?),
        (None, Some(n)) => Some(ConfigFile::preset(n).map_err(config_err)?),
        (None, None) => None,
    })
}

/// The config a call describes: the config file or preset (if any), the keys on top.
fn resolve(
    config: Option<PathBuf>,
    preset: Option<&str>,
    keys: &Bound<PyDict>,
) -> PyResult<TrainConfig> {
    let file = config_file(config, preset)?;
    let table = toml_table(keys, "")?;
    nowt::run::resolve_keys(file.as_ref(), &table).map_err(config_err)
}

/// One split from a checked, C-contiguous sample array (`uint8`: values `k/255`, as the
/// built-in loaders decode 8-bit images; `float32`: as given) and its labels.
fn dataset(name: &str, x: &Bound<PyAny>, labels: Vec<u32>, classes: usize) -> PyResult<Dataset> {
    let (values, shape): (Vec<f32>, Vec<usize>) =
        if let Ok(a) = x.extract::<PyReadonlyArrayDyn<u8>>() {
            let shape = a.shape().to_vec();
            (
                a.as_slice()?.iter().map(|&p| p as f32 / 255.0).collect(),
                shape,
            )
        } else if let Ok(a) = x.extract::<PyReadonlyArrayDyn<f32>>() {
            (a.as_slice()?.to_vec(), a.shape().to_vec())
        } else {
            return Err(DataError::new_err(format!(
                "{name}: give a uint8 or float32 array"
            )));
        };
    let image = match shape[..] {
        [_, d] => [1, 1, d],
        [_, c, h, w] => [c, h, w],
        _ => {
            return Err(DataError::new_err(format!(
                "{name}: shape {shape:?}; give (N, C, H, W) images or (N, D) vectors"
            )))
        }
    };
    Ok(Dataset::dense(values, labels, image, classes))
}

/// The splits of `data=`: `(x_train, y_train, x_test, y_test[, x_val, y_val])`, checked by the
/// Python half (shapes, dtypes, labels, NaNs), prepared as the built-in datasets are.
fn split_of(data: &Bound<PyTuple>, classes: usize, cfg: &TrainConfig) -> PyResult<Split> {
    const NAMES: [&str; 6] = ["x_train", "y_train", "x_test", "y_test", "x_val", "y_val"];
    let part = |i: usize| -> PyResult<Dataset> {
        let y: PyReadonlyArrayDyn<i64> = data.get_item(i + 1)?.extract()?;
        let labels = y.as_slice()?.iter().map(|&l| l as u32).collect();
        dataset(NAMES[i], &data.get_item(i)?, labels, classes)
    };
    let (train, test) = (part(0)?, part(2)?);
    let val = if data.len() == 6 {
        Some(part(4)?)
    } else {
        None
    };
    let split = nowt::data::from_arrays(train, test, val, &cfg.load_options())
        .map_err(|e| py_err(e.into()))?;
    cfg.model_parts(split.train.shape, split.train.classes)
        .map_err(|e| py_err(e.into()))?;
    Ok(split)
}

/// Set by SIGINT while a run trains. The run's loop (and so its callbacks) runs on a worker
/// thread, where Python never handles signals; this flag is how Ctrl-C reaches it. The handler
/// is chained before Python's, which still records the signal for the main thread.
static SIGINT: std::sync::LazyLock<Arc<AtomicUsize>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// Routes SIGINT to [`SIGINT`] (once per process), and clears it for a new run.
fn watch_sigint() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ =
            signal_hook::flag::register_usize(signal_hook::consts::SIGINT, Arc::clone(&SIGINT), 1);
    });
    SIGINT.store(0, Ordering::SeqCst);
}

/// What a Python caller hands the run: callbacks, and the error that stopped it.
struct Callbacks {
    on_epoch: Option<Py<PyAny>>,
    on_step: Option<Py<PyAny>>,
    log_every: usize,
    /// An exception raised by a callback: the run stopped for it and re-raises it.
    raised: Option<PyErr>,
    /// Ctrl-C stopped the run.
    interrupted: bool,
    /// The run of a comparison the progress is about (`bp-s0 1/3`), given to `on_epoch` as the
    /// record's `run`.
    label: Option<String>,
    warnings: Vec<String>,
}

impl Callbacks {
    fn new(on_epoch: Option<Py<PyAny>>, on_step: Option<Py<PyAny>>, log_every: usize) -> Self {
        Self {
            on_epoch,
            on_step,
            log_every,
            raised: None,
            interrupted: false,
            label: None,
            warnings: Vec::new(),
        }
    }

    /// What the run is told after `p`: stop on Ctrl-C (looked for at every step, epoch and
    /// warm-up batch, callback or not), else run the callback due, if any, with the GIL (taken
    /// only then); `False` or an exception from it stops the run.
    fn on(&mut self, p: Progress) -> ControlFlow<()> {
        if matches!(
            p,
            Progress::Step { .. } | Progress::Epoch { .. } | Progress::WarmUp { .. }
        ) && SIGINT.load(Ordering::SeqCst) != 0
        {
            self.interrupted = true;
            return ControlFlow::Break(());
        }
        let answer = match p {
            Progress::Step { step, loss, .. } => match &self.on_step {
                Some(f) if self.log_every > 0 && step % self.log_every == 0 => {
                    Python::attach(|py| keep_going(&f.call1(py, (step, loss))?.into_bound(py)))
                }
                _ => Ok(true),
            },
            Progress::Epoch { record } => match &self.on_epoch {
                Some(f) => {
                    let mut value = serde_json::to_value(record).expect("records serialise");
                    if let (Some(label), Some(m)) = (&self.label, value.as_object_mut()) {
                        m.insert("run".into(), label.clone().into());
                    }
                    let json = value.to_string();
                    Python::attach(|py| {
                        let rec = py.import("json")?.call_method1("loads", (json,))?;
                        keep_going(&f.call1(py, (rec,))?.into_bound(py))
                    })
                }
                None => Ok(true),
            },
            Progress::Warning(w) => {
                self.warnings.push(w);
                Ok(true)
            }
            Progress::Started { .. }
            | Progress::WarmUp { .. }
            | Progress::Evaluating { .. }
            | Progress::Pretrain { .. }
            | Progress::Probe { .. } => Ok(true),
        };
        match answer {
            Ok(true) => ControlFlow::Continue(()),
            Ok(false) => ControlFlow::Break(()),
            Err(e) => {
                self.raised = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// A callback's answer: anything but `False` goes on.
fn keep_going(v: &Bound<PyAny>) -> PyResult<bool> {
    Ok(!v.is_instance_of::<PyBool>() || v.extract::<bool>()?)
}

/// Runs `go` without the GIL, then turns how it ended into Python's answer: the library's
/// warnings as Python warnings, a callback's exception (or `KeyboardInterrupt`) re-raised, an
/// error as `err` makes it.
fn finish_run<R>(
    py: Python,
    cb: &mut Callbacks,
    err: fn(anyhow::Error) -> PyErr,
    go: impl FnOnce(&mut Callbacks) -> anyhow::Result<R> + Send,
) -> PyResult<R>
where
    R: Send,
{
    watch_sigint();
    let result = py.detach(|| go(cb));
    for w in cb.warnings.drain(..) {
        let warnings = py.import("warnings")?;
        warnings.call_method1("warn", (format!("nowt: {w}"),))?;
    }
    if let Some(e) = cb.raised.take() {
        return Err(e);
    }
    if cb.interrupted {
        // Python's own handler has recorded the signal: it raises KeyboardInterrupt here.
        py.check_signals()?;
        return Err(PyKeyboardInterrupt::new_err(
            "interrupted; the run is checkpointed",
        ));
    }
    result.map_err(err)
}

/// Whether a run finished (or was stopped, resumable).
fn finished_run(f: Finish) -> bool {
    matches!(f, Finish::Finished(_))
}

fn origin(call: &str) -> nowt::run::Origin {
    nowt::run::Origin {
        command: call.to_string(),
        git_commit: env!("NOWT_GIT_COMMIT").into(),
    }
}

/// Trains a fresh run; returns `(run directory, finished)`. See `nowt.train`.
#[pyfunction]
#[pyo3(signature = (keys, config=None, preset=None, data=None, classes=0, on_epoch=None, on_step=None, log_every=0, checkpoint_every=0, keep_checkpoints=3, init_from=None, call=String::new()))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python,
    keys: &Bound<PyDict>,
    config: Option<PathBuf>,
    preset: Option<&str>,
    data: Option<&Bound<PyTuple>>,
    classes: usize,
    on_epoch: Option<Py<PyAny>>,
    on_step: Option<Py<PyAny>>,
    log_every: usize,
    checkpoint_every: usize,
    keep_checkpoints: usize,
    init_from: Option<PathBuf>,
    call: String,
) -> PyResult<(String, bool)> {
    if data.is_some() {
        keys.set_item("dataset", "arrays")?;
    }
    let cfg = resolve(config, preset, keys)?;
    let data = match data {
        Some(d) => split_of(d, classes, &cfg)?,
        None => py.detach(|| nowt::run::load_data(&cfg)).map_err(py_err)?,
    };
    let dir = nowt::run::new_dir(&cfg).map_err(py_err)?;
    let opts = RunOpts {
        checkpoint_every,
        keep_checkpoints,
        init_from,
        log_every,
        origin: origin(&call),
        ..RunOpts::default()
    };
    let mut cb = Callbacks::new(on_epoch, on_step, log_every);
    let finished = finish_run(py, &mut cb, py_err, |cb| {
        nowt::run::start(cfg, &data, &dir, &opts, &Solo, &mut |p| cb.on(p)).map(finished_run)
    })?;
    Ok((dir.display().to_string(), finished))
}

/// Runs a comparison; returns `(its directory, done)`. See `nowt.compare`.
#[pyfunction]
#[pyo3(signature = (keys, rules, seeds, grid, grid_seeds=Vec::new(), config=None, preset=None, out=None, on_epoch=None, on_step=None, log_every=0, checkpoint_every=0, keep_checkpoints=3, call=String::new()))]
#[allow(clippy::too_many_arguments)]
fn compare(
    py: Python,
    keys: &Bound<PyDict>,
    rules: Vec<String>,
    seeds: Vec<u64>,
    grid: Vec<(String, Vec<String>)>,
    grid_seeds: Vec<u64>,
    config: Option<PathBuf>,
    preset: Option<String>,
    out: Option<PathBuf>,
    on_epoch: Option<Py<PyAny>>,
    on_step: Option<Py<PyAny>>,
    log_every: usize,
    checkpoint_every: usize,
    keep_checkpoints: usize,
    call: String,
) -> PyResult<(String, bool)> {
    let file = config_file(config, preset.as_deref())?;
    let mut kinds = Vec::new();
    for r in &rules {
        let k =
            nowt::rules::RuleKind::from_name(r).map_err(|e| ConfigError::new_err(e.to_string()))?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let table = toml_table(keys, "")?;
    for key in ["rule", "seed", "out"] {
        if table.contains_key(key) {
            return Err(ConfigError::new_err(format!(
                "{key}: a comparison takes rules=, seeds= and out=, not {key}="
            )));
        }
    }
    // Every run's config is resolved (and refused) before anything starts.
    let base = |rule: nowt::rules::RuleKind, seed: u64| {
        let mut t = table.clone();
        t.insert("rule".into(), toml::Value::String(rule.name().into()));
        t.insert("seed".into(), toml::Value::Integer(seed as i64));
        nowt::run::resolve_keys(file.as_ref(), &t)
    };
    let spec = nowt::compare::Spec {
        file: file.as_ref(),
        rules: kinds,
        seeds,
        grid: grid
            .into_iter()
            .map(|(key, values)| nowt::compare::sweep::Axis { key, values })
            .collect(),
        grid_seeds,
        out,
        preset,
    };
    let opts = RunOpts {
        checkpoint_every,
        keep_checkpoints,
        log_every,
        origin: origin(&call),
        ..RunOpts::default()
    };
    let mut cb = Callbacks::new(on_epoch, on_step, log_every);
    let ended = finish_run(py, &mut cb, compare_err, |cb| {
        nowt::compare::compare(&spec, &base, &opts, &Solo, &mut |note| match note {
            nowt::compare::Note::Line(line) => {
                if let Some(w) = line.strip_prefix("warning: ") {
                    cb.warnings.push(w.to_string());
                }
                ControlFlow::Continue(())
            }
            nowt::compare::Note::Run { label, progress } => {
                cb.label = Some(label.to_string());
                cb.on(progress)
            }
        })
    })?;
    Ok(match ended {
        nowt::compare::Ended::Done(dir) => (dir.display().to_string(), true),
        nowt::compare::Ended::Stopped(dir) => (dir.display().to_string(), false),
    })
}

/// A comparison's failure: a typed library error as [`py_err`] classes it; otherwise its
/// planning refused the arguments (a sweep without validation, a key a run cannot take).
fn compare_err(e: anyhow::Error) -> PyErr {
    match e.chain().any(|c| c.downcast_ref::<nowt::Error>().is_some()) {
        true => py_err(e),
        false => config_err(e),
    }
}

/// Writes the report of run directories (`report.md`, `report.csv`, `figures/`) in `out`.
#[pyfunction]
fn report(dirs: Vec<PathBuf>, out: PathBuf) -> PyResult<String> {
    nowt::compare::report::write_report(&dirs, &out).map_err(py_err)?;
    Ok(out.join("report.md").display().to_string())
}

/// Continues the run in `dir`; returns whether it finished. See `nowt.resume`.
#[pyfunction]
#[pyo3(signature = (dir, data=None, classes=0, epochs=None, threads=None, on_epoch=None, on_step=None, log_every=0, checkpoint_every=0, keep_checkpoints=3, call=String::new()))]
#[allow(clippy::too_many_arguments)]
fn resume(
    py: Python,
    dir: PathBuf,
    data: Option<&Bound<PyTuple>>,
    classes: usize,
    epochs: Option<usize>,
    threads: Option<usize>,
    on_epoch: Option<Py<PyAny>>,
    on_step: Option<Py<PyAny>>,
    log_every: usize,
    checkpoint_every: usize,
    keep_checkpoints: usize,
    call: String,
) -> PyResult<bool> {
    let split = match data {
        Some(d) => {
            let cfg = nowt::run::read_config(&dir.join("config.toml")).map_err(py_err)?;
            Some(split_of(d, classes, &cfg)?)
        }
        None => None,
    };
    let opts = RunOpts {
        checkpoint_every,
        keep_checkpoints,
        epochs,
        threads,
        log_every,
        origin: origin(&call),
        ..RunOpts::default()
    };
    let mut cb = Callbacks::new(on_epoch, on_step, log_every);
    finish_run(py, &mut cb, py_err, |cb| {
        nowt::run::resume(&dir, &opts, split.as_ref(), &Solo, &mut |p| cb.on(p))
            .map(|(_, finish)| finished_run(finish))
    })
}

/// A run directory's config as JSON text.
#[pyfunction]
fn config_json(dir: PathBuf) -> PyResult<String> {
    let path = dir.join("config.toml");
    let cfg =
        nowt::run::read_config(&path).map_err(|e| CheckpointError::new_err(format!("{e:#}")))?;
    Ok(serde_json::to_string(&cfg).expect("configs serialise"))
}

/// The config a call's keys describe, as JSON text (what `nowt.train` would run).
#[pyfunction]
#[pyo3(signature = (keys, config=None, preset=None))]
fn resolve_json(
    keys: &Bound<PyDict>,
    config: Option<PathBuf>,
    preset: Option<&str>,
) -> PyResult<String> {
    let cfg = resolve(config, preset, keys)?;
    Ok(serde_json::to_string(&cfg).expect("configs serialise"))
}

/// A checkpoint's tensors as numpy arrays (`float32`, the model's shapes), each weight layer's
/// `M` under the run's rule added as `<layer>.M`, and its metadata (epoch, step, config) as JSON.
#[pyfunction]
fn checkpoint<'py>(py: Python<'py>, path: PathBuf) -> PyResult<(String, Bound<'py, PyDict>)> {
    let (cfg, st, input, classes) = nowt::checkpoint::load(&path).map_err(|e| py_err(e.into()))?;
    let out = PyDict::new(py);
    let array = |t: &nowt::Tensor<f32>| -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        t.data().to_pyarray(py).reshape(t.shape().to_vec())
    };
    for (name, t) in nowt::checkpoint::named_tensors(&st) {
        out.set_item(name, array(t)?)?;
    }
    for (name, t) in nowt::train::rule_matrices(&cfg, &st.net) {
        out.set_item(name, array(&t)?)?;
    }
    let meta = serde_json::json!({
        "epoch": st.epoch,
        "step": st.step,
        "input_shape": input,
        "classes": classes,
        "rule": cfg.rule.name(),
        "input_norm": st.input_norm,
        "config": cfg,
        "path": path,
    });
    Ok((meta.to_string(), out))
}

/// The logits of checkpoint `path`'s network for samples `x` (raw, as `data=` takes them), in
/// evaluation mode, normalised by the run's recorded normalisation: `[N, classes]`.
#[pyfunction]
fn forward<'py>(
    py: Python<'py>,
    path: PathBuf,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (cfg, mut st, input, classes) =
        nowt::checkpoint::load(&path).map_err(|e| py_err(e.into()))?;
    if st.input_norm.is_empty() {
        return Err(CheckpointError::new_err(format!(
            "{}: written before checkpoints recorded the input normalisation; resume the run for one epoch to get a checkpoint that has it",
            path.display()
        )));
    }
    let n = x.getattr("shape")?.get_item(0)?.extract::<usize>()?;
    let mut d = dataset("x", x, vec![0; n], classes)?;
    if d.shape != input {
        return Err(DataError::new_err(format!(
            "x: samples of shape {:?}, the network takes {input:?}",
            d.shape
        )));
    }
    d.normalise(&st.input_norm);
    let pool = rayon_pool(cfg.resolved_threads())?;
    let logits = py
        .detach(|| pool.install(|| nowt::train::logits(&mut st.net, &d)))
        .map_err(|e| py_err(e.into()))?;
    logits.to_pyarray(py).reshape(vec![n, classes])
}

fn rayon_pool(threads: usize) -> PyResult<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| NowtError::new_err(e.to_string()))
}

/// The checkpoints of a run directory, newest first.
#[pyfunction]
fn checkpoints(dir: PathBuf) -> Vec<String> {
    nowt::checkpoint::list(&dir.join("checkpoints"))
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// `nowt check`'s oracles (DESIGN.md §6) for `models` × `rules` (default: the CLI's models,
/// every rule): one JSON object per check. `models` is a JSON list, each a built-in model's
/// name or a description (a list of layers, or a dict with `layers`).
#[pyfunction]
#[pyo3(signature = (models="[]".to_string(), rules=Vec::new()))]
fn check_json(py: Python, models: String, rules: Vec<String>) -> PyResult<String> {
    let mut kinds: Vec<nowt::config::Model> = serde_json::from_str(&models)
        .map_err(|e| ConfigError::new_err(format!("invalid models: {e}")))?;
    if kinds.is_empty() {
        kinds = nowt::check::DEFAULT_MODELS.map(Into::into).to_vec();
    }
    let mut rule_kinds = rules
        .iter()
        .map(|r| {
            nowt::rules::RuleKind::from_name(r).map_err(|e| ConfigError::new_err(e.to_string()))
        })
        .collect::<PyResult<Vec<_>>>()?;
    if rule_kinds.is_empty() {
        rule_kinds = nowt::rules::RuleKind::ALL.to_vec();
    }
    let cfg = nowt::rules::RuleConfig::default();
    let outcomes = py
        .detach(|| nowt::check::run(&kinds, &rule_kinds, &cfg))
        .map_err(|e| py_err(e.into()))?;
    let json: Vec<_> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "model": o.model,
                "rule": o.rule.map(|r| r.name()),
                "check": o.check,
                "passed": o.passed,
                "detail": o.detail,
            })
        })
        .collect();
    Ok(serde_json::to_string(&json).expect("json"))
}

/// The rule registry as JSON: each rule's name, aliases, summary and knobs.
#[pyfunction]
fn rules_json() -> String {
    let rules: Vec<_> = nowt::rules::RuleKind::ALL
        .into_iter()
        .map(|k| {
            let info = k.info();
            serde_json::json!({
                "name": info.name,
                "aliases": info.aliases,
                "summary": info.summary,
                "knobs": info.knobs.iter().map(|kn| serde_json::json!({
                    "key": format!("rules.{}", kn.key),
                    "flag": format!("--{}", kn.flag),
                    "doc": kn.doc,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string(&rules).expect("json")
}

/// The presets: name → TOML text.
#[pyfunction]
fn presets<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    str_dict(py, &nowt::run::PRESETS)
}

/// A dict of `(name, text)` pairs.
fn str_dict<'py>(py: Python<'py>, pairs: &[(&str, &str)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in pairs {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// The default config as JSON text (every key and its default).
#[pyfunction]
fn defaults_json() -> String {
    serde_json::to_string(&TrainConfig::default()).expect("json")
}

/// Every config key's doc, as `nowt train --help` shows it (without the default).
#[pyfunction]
fn key_docs<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    str_dict(py, &nowt::config::KEY_DOCS)
}

/// Whether `dir` holds a finished run.
#[pyfunction]
fn finished(dir: PathBuf) -> bool {
    Path::new(&dir).join("summary.json").exists()
}

#[pymodule]
fn _nowt(m: &Bound<PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NowtError", py.get_type::<NowtError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("DivergedError", py.get_type::<DivergedError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(config_json, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_json, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoints, m)?)?;
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(rules_json, m)?)?;
    m.add_function(wrap_pyfunction!(check_json, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(defaults_json, m)?)?;
    m.add_function(wrap_pyfunction!(key_docs, m)?)?;
    m.add_function(wrap_pyfunction!(finished, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
