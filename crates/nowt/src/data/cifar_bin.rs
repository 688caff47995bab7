//! The official CIFAR-10/100 binary format (<https://www.cs.toronto.edu/~kriz/cifar.html>):
//! records of label byte(s) then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, rows
//! top to bottom). CIFAR-10: one label byte (0–9), `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin`, in `cifar-10-batches-bin/`. CIFAR-100: a coarse (0–19) and a fine (0–99)
//! label byte, `train.bin` and `test.bin`, in `cifar-100-binary/`; nowt trains on the fine
//! labels. Read from the directory or from the official `.tar.gz`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

const PIXELS: usize = 3 * 32 * 32;
/// The largest file a CIFAR split can be (CIFAR-100 train: 50,000 × 3,074 bytes), with room.
const MAX_FILE_BYTES: u64 = 200 << 20;

/// The two CIFAR variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }
    pub fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
    fn files(self) -> (&'static [&'static str], &'static str) {
        match self {
            Variant::Cifar10 => (
                &[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            Variant::Cifar100 => (&["train.bin"], "test.bin"),
        }
    }
}

/// Whether `path` (a directory or a `.tar.gz`) holds the binary format of `variant`: a
/// directory with its test file (directly or one level down), or an archive whose name says so.
pub fn is_binary(path: &Path, variant: Variant) -> bool {
    let test = variant.files().1;
    if path.is_dir() {
        return find_dir(path, test).is_some();
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.contains("bin") && (name.ends_with(".tar.gz") || name.ends_with(".tgz"))
}

/// The directory holding `file`: `path` itself or one of its subdirectories.
fn find_dir(path: &Path, file: &str) -> Option<PathBuf> {
    if path.join(file).is_file() {
        return Some(path.to_path_buf());
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join(file).is_file())
}

/// Parses the records of one file (`name` only labels errors): pixels in `[0, 1]`, `[N, 3072]`.
pub fn parse(bytes: &[u8], variant: Variant, name: &Path) -> Result<(Vec<f32>, Vec<u32>)> {
    let record = variant.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(Error::data(
            name,
            format!(
                "{} bytes is not a whole number of {record}-byte CIFAR records (truncated, or not the {} binary format)",
                bytes.len(),
                if variant == Variant::Cifar10 { "CIFAR-10" } else { "CIFAR-100" }
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut x = Vec::with_capacity(n * PIXELS);
    let mut y = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[variant.label_bytes() - 1] as usize;
        if label >= variant.classes() || (variant == Variant::Cifar100 && r[0] >= 20) {
            return Err(Error::data(
                name,
                format!(
                    "record {i}: label {label} (coarse {}) out of range 0..{}",
                    r[0],
                    variant.classes()
                ),
            ));
        }
        y.push(label as u32);
        x.extend(r[variant.label_bytes()..].iter().map(|&p| p as f32 / 255.0));
    }
    Ok((x, y))
}

/// Loads the train and test splits from a directory or the official `.tar.gz`.
pub fn load(path: &Path, variant: Variant) -> Result<(Dataset, Dataset)> {
    let files = if path.is_dir() {
        read_dir(path, variant)?
    } else {
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        read_tar_gz(file, path, variant)?
    };
    splits(&files, path, variant)
}

/// The split files by name: (path for messages, bytes).
type Files = BTreeMap<String, (PathBuf, Vec<u8>)>;

fn wanted(variant: Variant, file_name: &str) -> bool {
    let (train, test) = variant.files();
    train.contains(&file_name) || file_name == test
}

fn read_capped(mut r: impl Read, len: u64, path: &Path) -> Result<Vec<u8>> {
    if len > MAX_FILE_BYTES {
        return Err(Error::data(
            path,
            format!("{len} bytes is too large for a CIFAR file"),
        ));
    }
    let mut bytes = Vec::new();
    (&mut r)
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::data(path, format!("cannot read: {e}")))?;
    Ok(bytes)
}

fn read_dir(root: &Path, variant: Variant) -> Result<Files> {
    let dir = find_dir(root, variant.files().1)
        .ok_or_else(|| Error::data(root, format!("{} not found", variant.files().1)))?;
    let mut out = Files::new();
    let (train, test) = variant.files();
    for name in train.iter().chain([&test]) {
        let p = dir.join(name);
        if let Ok(file) = std::fs::File::open(&p) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            out.insert(name.to_string(), (p.clone(), read_capped(file, len, &p)?));
        }
    }
    Ok(out)
}

/// Reads the CIFAR files from a `.tar.gz` (bytes or a file).
pub fn read_tar_gz(reader: impl Read, path: &Path, variant: Variant) -> Result<Files> {
    let file_name = |name: &Path| {
        name.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let members = super::tar_gz_members(reader, path, MAX_FILE_BYTES, "a CIFAR file", |name| {
        wanted(variant, &file_name(name))
    })?;
    Ok(members
        .into_iter()
        .map(|(name, bytes)| {
            let shown = PathBuf::from(format!("{}:{}", path.display(), name.display()));
            (file_name(&name), (shown, bytes))
        })
        .collect())
}

/// Loads the splits from the bytes of an official `.tar.gz` (for tests and fuzzing).
pub fn from_tar_gz_bytes(
    bytes: &[u8],
    path: &Path,
    variant: Variant,
) -> Result<(Dataset, Dataset)> {
    splits(&read_tar_gz(bytes, path, variant)?, path, variant)
}

/// The train and test datasets from the files of `variant`.
fn splits(files: &Files, path: &Path, variant: Variant) -> Result<(Dataset, Dataset)> {
    let (train_names, test_name) = variant.files();
    let split = |names: &[&str]| -> Result<Dataset> {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for name in names {
            let (p, bytes) = files.get(*name).ok_or_else(|| {
                Error::data(path, format!("{name} is missing (the CIFAR binary files)"))
            })?;
            let (xi, yi) = parse(bytes, variant, p)?;
            x.extend(xi);
            y.extend(yi);
        }
        Ok(Dataset::dense(x, y, [3, 32, 32], variant.classes()))
    };
    Ok((split(train_names)?, split(&[test_name])?))
}
