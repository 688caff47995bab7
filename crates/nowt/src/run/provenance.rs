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
    /// Each later process that continued the run: its command, binary, the point it continued
    /// from (`at`: finished epochs and steps of the next) and any change made (a new data
    /// location, more epochs: `changes.epochs = [before, after]`).
    #[serde(default)]
    pub resumed: Vec<serde_json::Value>,
    /// The checkpoint the run started from (`--init-from`), absolute, and its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<InitFrom>,
}

/// The checkpoint a run started from and the crc32 of its bytes, so a repeat can check it has
/// the same file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitFrom {
    pub checkpoint: String,
    pub digest: String,
}

impl InitFrom {
    /// The record of starting from checkpoint `path` (a file or a run directory).
    pub fn of(path: &Path) -> Result<Self> {
        let path = crate::checkpoint::resolve(path)?;
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let path = fs::canonicalize(&path).unwrap_or(path);
        Ok(Self {
            checkpoint: path.display().to_string(),
            digest: format!("crc32:{:08x}", crc32fast::hash(&bytes)),
        })
    }
}

/// One change of a run's length: from `before` to `after` epochs, made when it had finished
/// `epoch` epochs and `step` steps of the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension {
    pub before: usize,
    pub after: usize,
    pub epoch: usize,
    pub step: usize,
}

impl Provenance {
    /// The run's changes of length, in order (a resume that changed nothing else is not one).
    pub fn extensions(&self) -> Vec<Extension> {
        self.resumed
            .iter()
            .filter_map(|r| {
                let e = r.get("changes")?.get("epochs")?.as_array()?;
                let at = r.get("at");
                let num = |v: Option<&serde_json::Value>| v?.as_u64().map(|n| n as usize);
                Some(Extension {
                    before: num(e.first())?,
                    after: num(e.get(1))?,
                    epoch: num(at.and_then(|a| a.get("epoch")))?,
                    step: num(at.and_then(|a| a.get("step"))).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Where the run came from, one line each: the checkpoint it started from, each extension.
    pub fn lineage(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.init_from {
            out.push(format!("started from {} ({})", f.checkpoint, f.digest));
        }
        for e in self.extensions() {
            let part = if e.step > 0 {
                format!(" and {} steps of the next", e.step)
            } else {
                String::new()
            };
            out.push(format!(
                "extended from {} to {} epochs after {} epochs{part}",
                e.before, e.after, e.epoch
            ));
        }
        out
    }

    /// The commands that train the run in `dir` again into `out`, or why none can: its config
    /// with `--out`, `--init-from` the checkpoint it started from, and each extension as a
    /// resume with its `--epochs` (exact where every extension came at an epoch's end; one
    /// made mid-epoch cannot be replayed by commands). `nowt` stands for the binary.
    pub fn repeat_command(&self, dir: &Path, out: &str) -> std::result::Result<String, String> {
        let exts = self.extensions();
        if let Some(e) = exts.iter().find(|e| e.step > 0) {
            return Err(format!(
                "extended to {} epochs in the middle of epoch {} (after {} steps): no command \
                 repeats that",
                e.after,
                e.epoch + 1,
                e.step
            ));
        }
        let mut cmd = format!("nowt train -c {}/config.toml --out {out}", dir.display());
        if let Some(f) = &self.init_from {
            cmd += &format!(" --init-from {}", f.checkpoint);
        }
        if let Some(first) = exts.first() {
            cmd += &format!(" --epochs {}", first.before);
        }
        for e in &exts {
            cmd += &format!(" && nowt train --resume {out} --epochs {}", e.after);
        }
        Ok(cmd)
    }
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
            init_from: None,
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
    // (Its digest is recorded in provenance.json by the caller, `InitFrom::of`.)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Extensions read from the resumes that changed the length (others skipped), and the
    /// command that replays them: the first stretch at its first length, then each extension;
    /// one made mid-epoch cannot be replayed and says so.
    #[test]
    fn lineage_and_repeat_command() {
        let resume = |at: (usize, usize), epochs: Option<[usize; 2]>| {
            let changes = match epochs {
                Some(e) => serde_json::json!({ "epochs": e }),
                None => serde_json::json!({ "data_dir": "/elsewhere" }),
            };
            serde_json::json!({ "at": { "epoch": at.0, "step": at.1 }, "changes": changes })
        };
        let mut p = Provenance {
            resumed: vec![
                resume((1, 7), None),
                resume((2, 0), Some([2, 3])),
                resume((3, 0), Some([3, 5])),
            ],
            init_from: Some(InitFrom {
                checkpoint: "/c.safetensors".into(),
                digest: "crc32:0000abcd".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            p.lineage(),
            [
                "started from /c.safetensors (crc32:0000abcd)",
                "extended from 2 to 3 epochs after 2 epochs",
                "extended from 3 to 5 epochs after 3 epochs",
            ]
        );
        assert_eq!(
            p.repeat_command(Path::new("runs/r"), "NEW").unwrap(),
            "nowt train -c runs/r/config.toml --out NEW --init-from /c.safetensors --epochs 2 \
             && nowt train --resume NEW --epochs 3 && nowt train --resume NEW --epochs 5"
        );
        p.resumed.push(resume((4, 12), Some([5, 8])));
        let why = p.repeat_command(Path::new("runs/r"), "NEW").unwrap_err();
        assert!(
            why.contains("in the middle of epoch 5 (after 12 steps)"),
            "{why}"
        );
    }
}
