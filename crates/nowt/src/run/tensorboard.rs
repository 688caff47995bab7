//! TensorBoard event files (`tensorboard = true`): a run's scalars in `<run>/tb/`, readable by
//! TensorBoard and by W&B's TensorBoard sync.
//!
//! The format is small, so nowt writes it itself (the Rust TensorBoard crates are unmaintained
//! or need `protoc` at build time). A file `events.out.tfevents.<seconds>.<host>` is a sequence
//! of TFRecords,
//!
//! ```text
//! u64 length (LE) · u32 masked_crc32c(length bytes) · data · u32 masked_crc32c(data)
//! masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8,  c = CRC-32C (Castagnoli) of x
//! ```
//!
//! each holding one `tensorflow.Event` protobuf: `wall_time` (field 1, double), `step` (2,
//! int64), then either `file_version` (3, string, the first record: `brain.Event:2`) or a
//! `summary` (5) of `Summary.Value`s, each a `tag` (1, string) and a `simple_value` (2, float).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::train::EpochRecord;

const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TFRecord's masked CRC-32C of `bytes`.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let c = CASTAGNOLI.checksum(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one TFRecord.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Protobuf varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field (wire type 2).
fn bytes_field(field: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(field << 3 | 2);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An `Event` with `wall_time`, `step` and one more field already encoded.
fn event(wall_time: f64, step: i64, rest: &[u8]) -> Vec<u8> {
    let mut e = vec![1 << 3 | 1];
    e.extend_from_slice(&wall_time.to_le_bytes());
    e.push(2 << 3);
    varint(step as u64, &mut e);
    e.extend_from_slice(rest);
    e
}

/// An `Event` at `step` whose summary holds `scalars` as `(tag, simple_value)`.
pub fn scalars_event(wall_time: f64, step: i64, scalars: &[(String, f32)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, v) in scalars {
        let mut value = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut value);
        value.push(2 << 3 | 5);
        value.extend_from_slice(&v.to_le_bytes());
        bytes_field(1, &value, &mut summary);
    }
    let mut rest = Vec::new();
    bytes_field(5, &summary, &mut rest);
    event(wall_time, step, &rest)
}

/// The first `Event` of every file: its format version.
fn version_event(wall_time: f64) -> Vec<u8> {
    let mut rest = Vec::new();
    bytes_field(3, b"brain.Event:2", &mut rest);
    event(wall_time, 0, &rest)
}

/// Every number of an epoch's `metrics.jsonl` record as a scalar, tagged by its path
/// (`train/loss`, `test/top1_err`, `lr`); per-layer measurements one tag per layer
/// (`weight_angle_deg/fc2`). Missing values (`null`) are left out.
pub fn record_scalars(r: &EpochRecord) -> Vec<(String, f32)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f32)>) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((prefix.to_string(), x as f32));
                }
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let tag = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}/{k}")
                    };
                    walk(&tag, v, out);
                }
            }
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).expect("records serialise");
    let layers = v
        .as_object_mut()
        .and_then(|m| m.remove("layers"))
        .unwrap_or_default();
    let mut out = Vec::new();
    walk("", &v, &mut out);
    for l in layers.as_array().into_iter().flatten() {
        let name = l["layer"].as_str().unwrap_or("?");
        for (k, v) in l.as_object().into_iter().flatten() {
            if let Some(x) = v.as_f64() {
                out.push((format!("{k}/{name}"), x as f32));
            }
        }
    }
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file in a run's `tb/` (a new file each time a run starts or resumes, as
/// TensorBoard expects of a restarted writer).
pub struct EventWriter {
    path: PathBuf,
    file: fs::File,
}

impl EventWriter {
    /// Creates `<run>/tb/events.out.tfevents.<seconds>.<host>` with its version record.
    pub fn create(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join("tb");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "nowt".into());
        let t = now();
        let mut k = 0;
        let path = loop {
            let suffix = if k == 0 {
                String::new()
            } else {
                format!(".{k}")
            };
            let p = dir.join(format!("events.out.tfevents.{}.{host}{suffix}", t as u64));
            if !p.exists() {
                break p;
            }
            k += 1;
        };
        let file =
            fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = Self { path, file };
        w.write(&version_event(t))?;
        Ok(w)
    }

    fn write(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&record(event))
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The scalars of an epoch's record at step `epoch`.
    pub fn epoch(&mut self, r: &EpochRecord) -> Result<()> {
        self.write(&scalars_event(now(), r.epoch as i64, &record_scalars(r)))
    }

    /// The training loss at global step `step` (tag `train/step_loss`).
    pub fn step_loss(&mut self, step: usize, loss: f64) -> Result<()> {
        let scalars = [("train/step_loss".to_string(), loss as f32)];
        self.write(&scalars_event(now(), step as i64, &scalars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C's check value ("123456789" → e3069283, RFC 3720), and TFRecord's masking of it.
    #[test]
    fn castagnoli_and_its_mask() {
        assert_eq!(CASTAGNOLI.checksum(b"123456789"), 0xe306_9283);
        // (0xe3069283 rotated right by 15) + 0xa282ead8, worked by hand.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn records_frame_their_data() {
        let r = record(b"abc");
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[8..12], &masked_crc(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc(b"abc").to_le_bytes());
    }

    /// The protobuf bytes of a one-scalar event, written out by hand from the field numbers.
    #[test]
    fn a_scalar_event_is_the_protobuf_by_hand() {
        let e = scalars_event(1.5, 300, &[("lr".into(), 0.25)]);
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0xac, 0x02]); // step 300 as a varint
        let mut value = vec![0x0a, 2, b'l', b'r', 0x15];
        value.extend_from_slice(&0.25f32.to_le_bytes());
        let mut summary = vec![0x0a, value.len() as u8];
        summary.extend_from_slice(&value);
        want.push(0x2a);
        want.push(summary.len() as u8);
        want.extend_from_slice(&summary);
        assert_eq!(e, want);
    }
}
