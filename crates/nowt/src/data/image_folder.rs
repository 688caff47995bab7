//! Image-folder datasets in the ImageNet layout, `root/{train,test|val}/<class>/*.{jpg,png}`,
//! read from a directory or straight from a `.tar.gz` of one (the CIFAR-10 copy in
//! `../shared/data/cifar10-jpeg.tar.gz`). Images are decoded by the `image` crate, in parallel.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::transform::{Source, MAX_IMAGE_BYTES};
use super::Dataset;
use crate::{Error, Result};

/// Encoded images of one split: (class name, image).
pub type Files = Vec<(String, Source)>;

/// Loads the train and test (or val) splits. With `image_size` 0 all images are decoded now
/// and must share one size; otherwise they stay encoded and are cropped to `image_size` when
/// a batch is made. [`super::load`] checks that the splits agree.
pub fn load(root: &Path, image_size: usize) -> Result<(Dataset, Dataset)> {
    let (train, test, classes) = read(root)?;
    Ok((
        build(root, train, &classes, image_size)?,
        build(root, test, &classes, image_size)?,
    ))
}

/// The train and test (or val) images of a folder or `.tar.gz`, still encoded, and the class
/// names (the training split's folders, sorted).
pub fn read(root: &Path) -> Result<(Files, Files, Vec<String>)> {
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

/// The dataset of `files`: decoded now (`image_size` 0), or kept encoded for `image_size`.
pub fn build(root: &Path, files: Files, classes: &[String], image_size: usize) -> Result<Dataset> {
    if image_size > 0 {
        encoded(files, classes, image_size)
    } else {
        decode(root, files, classes)
    }
}

/// Loads an image folder from the bytes of its `.tar.gz` (`path` only names it in messages).
pub fn from_tar_gz_bytes(
    bytes: &[u8],
    path: &Path,
    image_size: usize,
) -> Result<(Dataset, Dataset)> {
    let (train, test, classes) = from_splits(path, read_tar_gz(bytes, path)?)?;
    Ok((
        build(path, train, &classes, image_size)?,
        build(path, test, &classes, image_size)?,
    ))
}

fn from_splits(
    root: &Path,
    mut splits: BTreeMap<String, Files>,
) -> Result<(Files, Files, Vec<String>)> {
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
        let mut c: Vec<String> = train.iter().map(|(c, _)| c.clone()).collect();
        c.sort();
        c.dedup();
        c
    };
    Ok((train, test, classes))
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
    let members = super::tar_gz_members(reader, path, MAX_IMAGE_BYTES, "an image", |name| {
        split_class(name).is_some()
    })?;
    let mut out: BTreeMap<String, Files> = BTreeMap::new();
    for (name, bytes) in members {
        let (split, class, _) = split_class(&name).expect("kept for its split and class");
        let source = Source::Bytes {
            name: format!("{}:{}", path.display(), name.display()).into(),
            bytes: bytes.into(),
        };
        out.entry(split).or_default().push((class, source));
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
                out.entry(split.clone())
                    .or_default()
                    .push((class.clone(), Source::File(f.into())));
            }
        }
    }
    Ok(out)
}

/// The label of every image, by its class's place in the sorted training classes.
fn labels(files: &Files, classes: &[String]) -> Result<Vec<u32>> {
    files
        .iter()
        .map(|(class, source)| {
            classes.binary_search(class).map(|l| l as u32).map_err(|_| {
                Error::data(
                    source.name(),
                    format!("class '{class}' does not appear in the training split"),
                )
            })
        })
        .collect()
}

/// The images kept encoded, to be decoded per batch at `size × size`.
fn encoded(files: Files, classes: &[String], size: usize) -> Result<Dataset> {
    let y = labels(&files, classes)?;
    let sources = files.into_iter().map(|(_, s)| s).collect();
    Ok(Dataset::encoded(sources, y, size, classes.len()))
}

/// Decodes every image (in parallel) to `[C, H, W]` values in `[0, 1]`, RGB, straight into
/// the dataset's rows (every image must have the first one's size).
fn decode(root: &Path, files: Files, classes: &[String]) -> Result<Dataset> {
    let y = labels(&files, classes)?;
    let Some((_, first)) = files.first() else {
        return Err(Error::data(root, "no images"));
    };
    let (w, h) = first.decode()?.dimensions();
    let dim = 3 * (w * h) as usize;
    let mut x = vec![0f32; files.len() * dim];
    x.par_chunks_mut(dim)
        .zip(files.par_iter())
        .try_for_each(|(row, (_, source))| {
            let rgb = source.decode()?;
            let (wi, hi) = rgb.dimensions();
            if (hi, wi) != (h, w) {
                return Err(Error::data(
                    source.name(),
                    format!("image is {wi}×{hi}, the others {w}×{h} (pass --image-size to resize)"),
                ));
            }
            super::transform::to_chw(&rgb, &[], row);
            Ok(())
        })?;
    Ok(Dataset::dense(
        x,
        y,
        [3, h as usize, w as usize],
        classes.len(),
    ))
}
