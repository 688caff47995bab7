//! Image-folder datasets in the ImageNet layout, `root/{train,test|val}/<class>/*.{jpg,png}`,
//! read from a directory or straight from a `.tar.gz` of one (the CIFAR-10 copy in
//! `../shared/data/cifar10-jpeg.tar.gz`). Images are decoded by the `image` crate, in parallel.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::Dataset;
use crate::{Error, Result};

/// Encoded images of one split: (class name, file name for messages, bytes).
type Files = Vec<(String, String, Vec<u8>)>;

/// Refuse single images larger than this (no dataset here comes near it).
const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// Loads the train and test (or val) splits. All images of a split must share one size (no
/// resizing yet); [`super::load`] checks that the splits agree.
pub fn load(root: &Path) -> Result<(Dataset, Dataset)> {
    let splits = if root.is_file() {
        let file = fs::File::open(root).map_err(|source| Error::Io {
            path: root.to_path_buf(),
            source,
        })?;
        read_tar_gz(file, root)?
    } else {
        read_dir(root)?
    };
    from_splits(root, splits)
}

/// Loads an image folder from the bytes of its `.tar.gz` (`path` only names it in messages).
pub fn from_tar_gz_bytes(bytes: &[u8], path: &Path) -> Result<(Dataset, Dataset)> {
    from_splits(path, read_tar_gz(bytes, path)?)
}

fn from_splits(root: &Path, mut splits: BTreeMap<String, Files>) -> Result<(Dataset, Dataset)> {
    let train = splits.remove("train").ok_or_else(|| {
        Error::data(
            root,
            "no train/ split (expected root/{train,test}/<class>/*.jpg)",
        )
    })?;
    let test = splits
        .remove("test")
        .or_else(|| splits.remove("val"))
        .ok_or_else(|| {
            Error::data(
                root,
                "no test/ or val/ split (expected root/{train,test}/<class>/*.jpg)",
            )
        })?;
    let classes: Vec<String> = {
        let mut c: Vec<String> = train.iter().map(|(c, _, _)| c.clone()).collect();
        c.sort();
        c.dedup();
        c
    };
    let train = decode(root, train, &classes)?;
    let test = decode(root, test, &classes)?;
    Ok((train, test))
}

/// The split and class of a path `…/<split>/<class>/<file>`.
fn split_class(path: &Path) -> Option<(String, String, String)> {
    let mut parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    let class = parts.pop()?;
    let split = parts.pop()?;
    let ext = file.rsplit('.').next()?.to_ascii_lowercase();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png").then_some((split, class, file))
}

fn read_tar_gz(reader: impl Read, path: &Path) -> Result<BTreeMap<String, Files>> {
    let io = |e: std::io::Error| Error::data(path, format!("corrupt or truncated archive: {e}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut out: BTreeMap<String, Files> = BTreeMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let name = entry.path().map_err(io)?.into_owned();
        let Some((split, class, _)) = split_class(&name) else {
            continue;
        };
        if entry.size() > MAX_IMAGE_BYTES {
            return Err(Error::data(
                path,
                format!(
                    "{}: {} bytes is too large for an image",
                    name.display(),
                    entry.size()
                ),
            ));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_IMAGE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        out.entry(split).or_default().push((
            class,
            format!("{}:{}", path.display(), name.display()),
            bytes,
        ));
    }
    Ok(out)
}

fn read_dir(root: &Path) -> Result<BTreeMap<String, Files>> {
    let list = |p: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(p)
            .map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out: BTreeMap<String, Files> = BTreeMap::new();
    for split_dir in list(root)?.into_iter().filter(|p| p.is_dir()) {
        let split = split_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for class_dir in list(&split_dir)?.into_iter().filter(|p| p.is_dir()) {
            let class = class_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let files: Vec<PathBuf> = list(&class_dir)?
                .into_iter()
                .filter(|p| split_class(p).is_some())
                .collect();
            if files.is_empty() {
                return Err(Error::data(
                    &class_dir,
                    "empty class folder: no .jpg, .jpeg or .png images",
                ));
            }
            for f in files {
                let bytes = fs::read(&f).map_err(|source| Error::Io {
                    path: f.clone(),
                    source,
                })?;
                out.entry(split.clone()).or_default().push((
                    class.clone(),
                    f.display().to_string(),
                    bytes,
                ));
            }
        }
    }
    Ok(out)
}

/// Decodes every image (in parallel) to `[C, H, W]` values in `[0, 1]`, RGB.
fn decode(root: &Path, files: Files, classes: &[String]) -> Result<Dataset> {
    let decoded: Vec<(u32, u32, u32, Vec<f32>)> = files
        .par_iter()
        .map(|(class, name, bytes)| {
            let label = classes.binary_search(class).map_err(|_| {
                Error::data(
                    name.as_str(),
                    format!("class '{class}' does not appear in the training split"),
                )
            })?;
            let img = image::load_from_memory(bytes)
                .map_err(|e| Error::data(name.as_str(), format!("cannot decode image: {e}")))?;
            let rgb = img.to_rgb8();
            let (w, h) = rgb.dimensions();
            let plane = (w * h) as usize;
            let mut chw = vec![0f32; 3 * plane];
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    chw[c * plane + i] = p[c] as f32 / 255.0;
                }
            }
            Ok((label as u32, h, w, chw))
        })
        .collect::<Result<_>>()?;
    let Some(&(_, h, w, _)) = decoded.first() else {
        return Err(Error::data(root, "no images"));
    };
    let mut x = Vec::with_capacity(decoded.len() * 3 * (h * w) as usize);
    let mut y = Vec::with_capacity(decoded.len());
    for ((label, hi, wi, chw), (_, name, _)) in decoded.into_iter().zip(&files) {
        if (hi, wi) != (h, w) {
            return Err(Error::data(
                name.as_str(),
                format!("image is {wi}×{hi}, the others {w}×{h} (nowt does not resize yet)"),
            ));
        }
        x.extend_from_slice(&chw);
        y.push(label);
    }
    let shape = [3, h as usize, w as usize];
    Ok(Dataset {
        x,
        y,
        dim: shape.iter().product(),
        shape,
        classes: classes.len(),
    })
}
