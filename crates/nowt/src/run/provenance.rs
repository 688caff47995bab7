//! Where a run came from and what it started from: `provenance.json` (the binary, machine and
//! data a run used, and every later process that continued it), and `--init-from`.

use std::fs;
use std::path::Path;

use crate::config::TrainConfig;
use crate::train::TrainState;
use anyhow::{bail, Context, Result};

/// Where a run came from: `provenance.json` in its directory, written when it starts and
/// extended each time it is resumed.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub nowt_version: String,
    /// The commit the binary was built from (`+changes`: with uncommitted changes).
    pub git_commit: String,
    pub cpu: String,
    pub threads: usize,
    /// The data's identity ([`crate::data::Split::fingerprint`]).
    pub data_fingerprint: String,
    pub command: String,
    /// Each later process that continued the run: its command, binary and any change made
    /// (a new data location, more epochs).
    #[serde(default)]
    pub resumed: Vec<serde_json::Value>,
}

impl Provenance {
    /// The record of a process starting or continuing `cfg` on `data` now, built as `origin`
    /// says.
    pub fn now(cfg: &TrainConfig, data: &crate::data::Split, origin: &Origin) -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self {
            nowt_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: origin.git_commit.clone(),
            cpu,
            threads: cfg.threads,
            data_fingerprint: data.fingerprint(),
            command: origin.command.clone(),
            resumed: Vec::new(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::checkpoint::write_atomic(&dir.join("provenance.json"), |w| {
            w.write_all(text.as_bytes())
        })
        .with_context(|| format!("cannot write {}/provenance.json", dir.display()))
    }
}

/// What started a run: the front end's command and the commit it was built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The command line, or the call that started the run.
    pub command: String,
    /// The commit the front end was built from (`+changes`: with uncommitted changes).
    pub git_commit: String,
}

/// Replaces the fresh state's `W`, `B`, biases and batch-norm parameters and statistics by those
/// of checkpoint `path` (a model of the same shape); optimiser state and counters start afresh.
pub fn init_from(st: &mut TrainState, path: &Path, data: &crate::data::Split) -> Result<()> {
    let path = &crate::checkpoint::resolve(path)?;
    let (_, from, input, classes) = crate::checkpoint::load(path)?;
    if (input, classes) != (data.train.shape, data.train.classes) {
        bail!(
            "--init-from {}: its model takes {input:?} and {classes} classes, the data has {:?} and {}",
            path.display(),
            data.train.shape,
            data.train.classes
        );
    }
    let theirs: std::collections::HashMap<String, &crate::Tensor<f32>> =
        crate::checkpoint::named_tensors(&from)
            .into_iter()
            .collect();
    let take = |name: &str, t: &mut crate::Tensor<f32>| -> Result<()> {
        match theirs.get(name) {
            Some(v) if v.shape() == t.shape() => {
                *t = (*v).clone();
                Ok(())
            }
            _ => bail!(
                "--init-from {}: it has no tensor {name} of shape {:?}: a checkpoint of another model",
                path.display(),
                t.shape()
            ),
        }
    };
    for l in st.net.weight_layers_mut() {
        let p = l.params_mut();
        let n = p.name.clone();
        take(&format!("{n}.weight"), &mut p.w)?;
        take(&format!("{n}.feedback"), &mut p.feedback)?;
        if let Some(b) = p.bias.as_mut() {
            take(&format!("{n}.bias"), b)?;
        }
    }
    for p in st.net.params_mut() {
        let n = p.name.clone();
        take(&n, &mut p.value)?;
    }
    for (n, b) in st.net.buffers_mut() {
        take(&n, b)?;
    }
    st.initial_norms = st
        .net
        .weight_layers()
        .iter()
        .map(|l| (l.params().w.norm(), l.params().feedback.norm()))
        .collect();
    Ok(())
}
