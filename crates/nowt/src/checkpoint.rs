//! Checkpoints: a run's whole [`TrainState`] and its config in one safetensors file, written
//! atomically.
//!
//! Tensors (all `F32`, row-major, shapes as in the model; `<layer>` is e.g. `fc1`):
//!
//! | name | shape | what |
//! |---|---|---|
//! | `<layer>.weight` | `[out, in]` | forward weights `W` |
//! | `<layer>.feedback` | `[out, in]` | feedback weights `B` (product feedback alignment: its `R`, `[mid, in]`) |
//! | `<layer>.direct` | `[classes, in]` | the broadcast rules' `D`; product feedback alignment's `P`, `[out, mid]` (under those rules only) |
//! | `<layer>.bias` | `[out]` | bias |
//! | `<layer>.weight.momentum`, `<layer>.feedback.momentum`, `<layer>.bias.momentum` | as above | SGD momentum or Adam's first moment, once created (`feedback` only under Kolen-Pollack and product feedback alignment) |
//! | `<layer>.weight.second_moment`, … (as for `.momentum`) | as above | Adam's second moments |
//! | `<bn>.gamma`, `<bn>.beta` (+ `.momentum`, `.second_moment`) | `[C]` | batch-norm scale and shift |
//! | `<bn>.running_mean`, `<bn>.running_var` | `[C]` | batch-norm running statistics |
//!
//! Metadata (all strings): `format` (`nowt-checkpoint-1`), `config` (the resolved TOML),
//! `input_shape` (`C,H,W`), `classes`, `epoch` (epochs finished), `step` (steps done in the next epoch),
//! `rng_mirror` (seed hex / stream / word position), `sums` (the running epoch sums as JSON),
//! `warmed_up`, `pretrained` (noise pre-training done), `best`, `selected` and `last` (JSON), `seconds` (wall seconds trained so far, over
//! every process), `warmup_seconds` (of which the rule's warm-up), `input_norm` (JSON: the per-channel
//! `[mean, std]` the inputs are normalised by, `x ← (x − mean)/std` on values as decoded, 8-bit
//! images as `k/255`), `checksum` (CRC-32 of every
//! tensor's name and data, hex; verified on load).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::{TrainConfig, MAX_WIDTH};
use crate::data::Image;
use crate::tensor::Tensor;
use crate::train::{EpochRecord, EpochSums, TrainState};
use crate::{Error, Result};

pub const FORMAT: &str = "nowt-checkpoint-1";

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Every tensor of the state with its checkpoint name.
pub fn named_tensors(st: &TrainState) -> Vec<(String, &Tensor<f32>)> {
    let mut out = Vec::new();
    for l in st.net.weight_layers() {
        let p = l.params();
        let n = &p.name;
        out.push((format!("{n}.weight"), &p.w));
        out.push((format!("{n}.feedback"), &p.feedback));
        if let Some(d) = &p.direct {
            out.push((format!("{n}.direct"), d));
        }
        if let Some(b) = &p.bias {
            out.push((format!("{n}.bias"), b));
        }
        for (kind, buffers) in [
            ("momentum", &p.momentum),
            ("second_moment", &p.second_moment),
        ] {
            for (suffix, m) in [
                ("weight", &buffers.w),
                ("feedback", &buffers.feedback),
                ("bias", &buffers.bias),
            ] {
                if let Some(m) = m {
                    out.push((format!("{n}.{suffix}.{kind}"), m));
                }
            }
        }
    }
    for p in st.net.params() {
        out.push((p.name.clone(), &p.value));
        for (kind, m) in [
            ("momentum", &p.momentum),
            ("second_moment", &p.second_moment),
        ] {
            if let Some(m) = m {
                out.push((format!("{}.{kind}", p.name), m));
            }
        }
    }
    out.extend(st.net.buffers());
    out
}

/// CRC-32 of every tensor's name and data in [`named_tensors`] order: stored in the metadata
/// and verified on load, so a checkpoint whose bytes were damaged is refused, not trained on.
pub fn checksum(st: &TrainState) -> String {
    let mut h = crc32fast::Hasher::new();
    for (name, t) in named_tensors(st) {
        h.update(name.as_bytes());
        for v in t.data() {
            h.update(&v.to_le_bytes());
        }
    }
    format!("{:08x}", h.finalize())
}

/// Serialises `cfg` and `st` into safetensors bytes.
pub fn to_bytes(
    cfg: &TrainConfig,
    st: &TrainState,
    input: Image,
    classes: usize,
) -> Result<Vec<u8>> {
    let tensors = named_tensors(st);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data().iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, t.shape().to_vec(), b)
                    .map_err(|e| err(Path::new(name), e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let r = &st.rng_mirror;
    let seed: String = r.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    let json = |v: &dyn erased::Json| v.json();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        (
            "config",
            toml::to_string(cfg).map_err(|e| Error::config("config", e.to_string()))?,
        ),
        ("input_shape", input.map(|d| d.to_string()).join(",")),
        ("classes", classes.to_string()),
        ("epoch", st.epoch.to_string()),
        ("step", st.step.to_string()),
        (
            "rng_mirror",
            format!("{seed}/{}/{}", r.get_stream(), r.get_word_pos()),
        ),
        (
            "sums",
            json(&(st.sums.loss, st.sums.top1, st.sums.top5, st.sums.seen)),
        ),
        ("warmed_up", st.warmed_up.to_string()),
        ("pretrained", st.pretrained.to_string()),
        ("best", json(&st.best)),
        ("selected", json(&st.selected)),
        ("last", json(&st.last)),
        ("seconds", format!("{:?}", st.seconds)),
        ("warmup_seconds", format!("{:?}", st.warmup_seconds)),
        ("input_norm", json(&st.input_norm)),
        ("checksum", checksum(st)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Checkpoint {
        path: PathBuf::new(),
        msg: e.to_string(),
    })
}

mod erased {
    /// JSON for metadata values (serde_json writes `f64` so that it reads back exactly).
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("plain data serialises")
        }
    }
}

/// A checkpoint's metadata, read with errors that name the file and the key.
struct Meta<'a> {
    map: HashMap<String, String>,
    path: &'a Path,
}

impl Meta<'_> {
    fn get(&self, k: &str) -> Result<&str> {
        self.map.get(k).map(String::as_str).ok_or_else(|| {
            err(
                self.path,
                format!("metadata has no '{k}': not a nowt checkpoint"),
            )
        })
    }

    fn count(&self, k: &str) -> Result<usize> {
        self.get(k)?
            .parse()
            .map_err(|_| err(self.path, format!("metadata '{k}' is not a count")))
    }

    fn number(&self, k: &str) -> Result<f64> {
        self.get(k)?
            .parse()
            .map_err(|_| err(self.path, format!("metadata '{k}' is not a number")))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, k: &str) -> Result<T> {
        let value: serde_json::Value = serde_json::from_str(self.get(k)?)
            .map_err(|e| err(self.path, format!("metadata '{k}': {e}")))?;
        serde_json::from_value(value).map_err(|e| err(self.path, format!("metadata '{k}': {e}")))
    }
}

/// Reads a checkpoint, checking every tensor against the model its config describes.
/// Returns the config, the state, and the model's input and class counts.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(TrainConfig, TrainState, Image, usize)> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        err(
            path,
            format!("corrupt or truncated: not a complete safetensors file ({e})"),
        )
    })?;
    let meta = Meta {
        map: header.metadata().clone().unwrap_or_default(),
        path,
    };
    let (cfg, input, classes) = model_of(&meta)?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| err(path, format!("corrupt or truncated ({e})")))?;
    weights_fit(&tensors, &cfg, input, classes, path)?;
    let mut st = TrainState::new(&cfg, input, classes);
    read_progress(&mut st, &meta, &cfg)?;
    let expected = read_tensors(&mut st, &tensors, path)?;
    // Checkpoints written before checksums existed have none to verify.
    if let Some(want) = meta.map.get("checksum") {
        let got = checksum(&st);
        if &got != want {
            return Err(err(
                path,
                format!("corrupt: the tensor data's checksum is {got}, the file records {want}"),
            ));
        }
    }
    if tensors.len() != expected {
        let mut names: Vec<&str> = tensors.names();
        names.sort();
        return Err(err(
            path,
            format!(
                "{} tensors, the model has {expected}: a checkpoint of another model ({names:?})",
                tensors.len()
            ),
        ));
    }
    Ok((cfg, st, input, classes))
}

/// The format, the embedded config (validated) and the model's input and class counts, each
/// bounded before anything is allocated for them.
fn model_of(meta: &Meta) -> Result<(TrainConfig, Image, usize)> {
    let path = meta.path;
    if meta.get("format")? != FORMAT {
        return Err(err(
            path,
            format!("format '{}' is not {FORMAT}", meta.get("format")?),
        ));
    }
    let cfg: TrainConfig = toml::from_str(meta.get("config")?)
        .map_err(|e| err(path, format!("embedded config: {}", e.message())))?;
    cfg.validate()
        .map_err(|e| err(path, format!("embedded config: {e}")))?;
    let classes = meta.count("classes")?;
    let dims: Vec<usize> = meta
        .get("input_shape")?
        .split(',')
        .map(|d| d.parse().unwrap_or(0))
        .collect();
    match dims[..] {
        [c, h, w]
            if c * h * w > 0
                && c <= 4
                && h * w <= MAX_WIDTH
                && classes > 0
                && classes <= MAX_WIDTH =>
        {
            Ok((cfg, [c, h, w], classes))
        }
        _ => Err(err(
            path,
            format!("implausible model size: input {dims:?}, {classes} classes"),
        )),
    }
}

/// Every weight the config implies must be in the file with its shape before the model is
/// built, so a header cannot make nowt allocate more than the file holds.
fn weights_fit(
    tensors: &SafeTensors,
    cfg: &TrainConfig,
    input: Image,
    classes: usize,
    path: &Path,
) -> Result<()> {
    let parts = cfg
        .model_parts(input, classes)
        .map_err(|e| err(path, format!("its model does not build: {e}")))?;
    for (name, shape) in &crate::models::weight_shapes(&parts) {
        let t = format!("{name}.weight");
        match tensors.tensor(&t) {
            Ok(v) if v.shape() == shape => {}
            Ok(v) => {
                let got = v.shape().to_vec();
                return Err(err(path, format!("tensor {t} has shape {got:?} but the model needs {shape:?}: a checkpoint of another model")));
            }
            Err(_) => {
                return Err(err(
                    path,
                    format!("tensor {t} is missing: a checkpoint of another model"),
                ))
            }
        }
    }
    Ok(())
}

/// Where the run stands: epoch and step, the mirror's stream, the running sums, the phases
/// done, the best and selected epochs, the last record, the time, the normalisation.
fn read_progress(st: &mut TrainState, meta: &Meta, cfg: &TrainConfig) -> Result<()> {
    let path = meta.path;
    st.epoch = meta.count("epoch")?;
    st.step = meta.count("step")?;
    if st.epoch > cfg.epochs {
        return Err(err(
            path,
            format!(
                "epoch {} is past the config's {} epochs",
                st.epoch, cfg.epochs
            ),
        ));
    }
    st.rng_mirror = parse_rng(meta.get("rng_mirror")?)
        .ok_or_else(|| err(path, "metadata 'rng_mirror' is malformed"))?;
    let (loss, top1, top5, seen): (f64, usize, usize, usize) = meta.json("sums")?;
    st.sums = EpochSums {
        loss,
        top1,
        top5,
        seen,
    };
    st.warmed_up = meta.get("warmed_up")? == "true";
    // Absent from checkpoints written before noise pre-training existed: none ran.
    st.pretrained = meta.map.get("pretrained").is_none_or(|v| v == "true");
    st.best = meta.json("best")?;
    // Absent from checkpoints written before model selection on validation existed.
    if meta.map.contains_key("selected") {
        st.selected = meta.json("selected")?;
    }
    st.last = meta.json::<Option<EpochRecord>>("last")?;
    st.seconds = meta.number("seconds")?;
    // Absent from checkpoints written before the warm-up was timed.
    if meta.map.contains_key("warmup_seconds") {
        st.warmup_seconds = meta.number("warmup_seconds")?;
    }
    // Absent from checkpoints written before the normalisation was recorded.
    if meta.map.contains_key("input_norm") {
        st.input_norm = meta.json("input_norm")?;
    }
    Ok(())
}

/// Reads the tensor `name` if the file has it, checked to be `F32` of `shape`.
fn read_tensor(
    tensors: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Option<Tensor<f32>>> {
    let v = match tensors.tensor(name) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if v.dtype() != Dtype::F32 {
        return Err(err(
            path,
            format!("tensor {name} is {:?}, expected F32", v.dtype()),
        ));
    }
    if v.shape() != shape {
        return Err(err(path, format!("tensor {name} has shape {:?} but the model needs {shape:?}: a checkpoint of another model", v.shape())));
    }
    Ok(Some(Tensor::from_vec(
        shape,
        v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )))
}

/// Fills the state's tensors from the file; returns how many tensors the model has (with the
/// optimiser's buffers the file holds), for the count check.
fn read_tensors(st: &mut TrainState, tensors: &SafeTensors, path: &Path) -> Result<usize> {
    let read = |name: &str, shape: &[usize]| read_tensor(tensors, name, shape, path);
    let missing = |name: &str| {
        err(
            path,
            format!("tensor {name} is missing: a checkpoint of another model"),
        )
    };
    let need = |name: String, shape: &[usize]| read(&name, shape)?.ok_or_else(|| missing(&name));
    let mut expected = 0;
    for layer in st.net.weight_layers_mut() {
        let p = layer.params_mut();
        let n = p.name.clone();
        let (ws, bs) = (
            p.w.shape().to_vec(),
            p.bias.as_ref().map(|b| b.shape().to_vec()),
        );
        p.w = need(format!("{n}.weight"), &ws)?;
        // `B` has `W`'s shape under every rule but product feedback alignment (its `R`).
        let fs = p.feedback.shape().to_vec();
        p.feedback = need(format!("{n}.feedback"), &fs)?;
        expected += 2;
        if let Some(d) = &p.direct {
            let ds = d.shape().to_vec();
            p.direct = Some(need(format!("{n}.direct"), &ds)?);
            expected += 1;
        }
        if let Some(bs) = &bs {
            p.bias = Some(need(format!("{n}.bias"), bs)?);
            expected += 1;
        }
        for (kind, buffers) in [
            ("momentum", &mut p.momentum),
            ("second_moment", &mut p.second_moment),
        ] {
            buffers.w = read(&format!("{n}.weight.{kind}"), &ws)?;
            buffers.feedback = read(&format!("{n}.feedback.{kind}"), &fs)?;
            buffers.bias = match &bs {
                Some(bs) => read(&format!("{n}.bias.{kind}"), bs)?,
                None => None,
            };
            expected += [&buffers.w, &buffers.feedback, &buffers.bias]
                .iter()
                .filter(|b| b.is_some())
                .count();
        }
    }
    for p in st.net.params_mut() {
        let shape = p.value.shape().to_vec();
        p.value = need(p.name.clone(), &shape)?;
        p.momentum = read(&format!("{}.momentum", p.name), &shape)?;
        p.second_moment = read(&format!("{}.second_moment", p.name), &shape)?;
        expected += 1 + p.momentum.is_some() as usize + p.second_moment.is_some() as usize;
    }
    for (name, t) in st.net.buffers_mut() {
        let shape = t.shape().to_vec();
        *t = need(name, &shape)?;
        expected += 1;
    }
    Ok(expected)
}

fn parse_rng(s: &str) -> Option<crate::Rng> {
    let mut parts = s.split('/');
    let hex = parts.next()?;
    let stream: u64 = parts.next()?.parse().ok()?;
    let pos: u128 = parts.next()?.parse().ok()?;
    if hex.len() != 64 || parts.next().is_some() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut r = crate::Rng::from_seed(seed);
    r.set_stream(stream);
    r.set_word_pos(pos);
    Some(r)
}

/// Reads a checkpoint file (see [`from_bytes`]).
pub fn load(path: &Path) -> Result<(TrainConfig, TrainState, Image, usize)> {
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Writes `path` atomically: `write` fills a temporary file beside it, which is flushed to
/// disk and renamed over `path` only if every byte was written. On any failure the temporary
/// file is removed and whatever was at `path` before is untouched.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        write(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes a checkpoint of `st` to `path` atomically.
pub fn save(
    path: &Path,
    cfg: &TrainConfig,
    st: &TrainState,
    input: Image,
    classes: usize,
) -> Result<()> {
    let bytes = to_bytes(cfg, st, input, classes)?;
    write_atomic(path, |w| w.write_all(&bytes))
}

/// The file name of the checkpoint taken after `step` steps of epoch `epoch` (0-based); names
/// sort in training order.
pub fn file_name(epoch: usize, step: usize) -> String {
    format!("ckpt-e{epoch:05}-s{step:07}.safetensors")
}

/// The checkpoint `path` names: the file itself, or for a run directory its newest checkpoint
/// (what `eval` and `--init-from` take either way).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let newest = list(&path.join("checkpoints")).into_iter().next();
    newest.ok_or_else(|| Error::Data {
        path: path.to_path_buf(),
        msg: "a directory without checkpoints: give a checkpoint file or a run directory \
              (one with checkpoints/ckpt-*.safetensors)"
            .into(),
    })
}

/// The checkpoint files in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ckpt-e") && n.ends_with(".safetensors"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.reverse();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata's floats (the epoch's running loss sum, the best validation error) come back
    /// bit for bit: serde_json parses floats correctly rounded only with its `float_roundtrip`
    /// feature (without it about one value in ten came back one ulp off, and a run resumed
    /// mid-epoch reported a train loss that differed in the last digit).
    #[test]
    fn metadata_floats_round_trip_bit_for_bit() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * 1000.0;
            let back: f64 = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:e}");
        }
    }

    fn state() -> (TrainConfig, TrainState) {
        let cfg = TrainConfig {
            hidden: vec![5],
            ..Default::default()
        };
        let mut st = TrainState::new(&cfg, [1, 2, 2], 3);
        st.epoch = 2;
        st.step = 7;
        st.sums = EpochSums {
            loss: 0.1 + 0.2,
            top1: 3,
            top5: 9,
            seen: 11,
        };
        st.best = Some((0.25, 2));
        st.warmed_up = true;
        for l in st.net.weight_layers_mut() {
            let p = l.params_mut();
            p.momentum.w = Some(p.w.map(|v| v * 0.5));
        }
        use rand::Rng;
        let _: u64 = st.rng_mirror.random();
        (cfg, st)
    }

    #[test]
    fn round_trips_every_piece_of_state() {
        let (cfg, st) = state();
        let bytes = to_bytes(&cfg, &st, [1, 2, 2], 3).unwrap();
        let (cfg2, st2, i, c) = from_bytes(&bytes, Path::new("x")).unwrap();
        assert_eq!((cfg2, i, c), (cfg, [1, 2, 2], 3));
        assert_eq!(
            (st2.epoch, st2.step, st2.sums, st2.best, st2.warmed_up),
            (st.epoch, st.step, st.sums, st.best, st.warmed_up)
        );
        assert_eq!(st2.rng_mirror, st.rng_mirror);
        for (a, b) in named_tensors(&st).iter().zip(named_tensors(&st2)) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1, b.1);
        }
        assert_eq!(named_tensors(&st).len(), named_tensors(&st2).len());
    }

    #[test]
    fn rejects_truncated_garbage_and_foreign_checkpoints() {
        let (cfg, st) = state();
        let bytes = to_bytes(&cfg, &st, [1, 2, 2], 3).unwrap();
        let msg = |b: &[u8]| {
            from_bytes(b, Path::new("c.safetensors"))
                .err()
                .expect("must fail")
                .to_string()
        };
        assert!(msg(&bytes[..bytes.len() - 10]).contains("corrupt or truncated"));
        assert!(msg(&bytes[..20]).contains("c.safetensors"));
        assert!(msg(b"not a checkpoint at all").contains("not a complete safetensors file"));
        assert!(msg(&[0xff; 64]).contains("c.safetensors"));
        // Another model's checkpoint: a wider hidden layer.
        let other_cfg = TrainConfig {
            hidden: vec![6],
            ..Default::default()
        };
        let other = TrainState::new(&other_cfg, [1, 2, 2], 3);
        let mut foreign = to_bytes(&other_cfg, &other, [1, 2, 2], 3).unwrap();
        // Swap in our config text so only the tensors disagree.
        // (as it appears in the JSON header: escaped)
        let ours = serde_json::to_string(&toml::to_string(&cfg).unwrap()).unwrap();
        let theirs = serde_json::to_string(&toml::to_string(&other_cfg).unwrap()).unwrap();
        assert_eq!(ours.len(), theirs.len());
        let at = foreign
            .windows(theirs.len())
            .position(|w| w == theirs.as_bytes())
            .expect("config text in the header");
        foreign[at..at + ours.len()].copy_from_slice(ours.as_bytes());
        assert!(msg(&foreign).contains("another model"), "{}", msg(&foreign));
    }

    #[test]
    fn a_write_that_fails_half_way_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        write_atomic(&path, |w| w.write_all(b"good")).unwrap();
        let e = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            ))
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("ckpt.safetensors") && e.to_string().contains("No space left")
        );
        assert_eq!(fs::read(&path).unwrap(), b"good");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temporary file was left behind"
        );
    }
}
