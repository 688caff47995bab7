//! Datasets: the embedded 8×8 digits, MNIST and Fashion-MNIST (IDX), with seeded shuffling,
//! an optional validation split and per-dataset normalisation.

mod digits;
pub mod idx;
pub mod image_folder;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::tensor::Tensor;
use crate::{Error, Result};

/// The datasets nowt can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// The 1,797 8×8 UCI digits, embedded in the binary (no download).
    Digits,
    /// MNIST IDX files in `data_dir`.
    Mnist,
    /// Fashion-MNIST IDX files in `data_dir` (Debian: `/usr/share/datasets/fashion-mnist`).
    FashionMnist,
    /// CIFAR-10 as an image folder (`{train,test}/<class>/*.jpg`), a directory or its `.tar.gz`.
    Cifar10,
    /// Any image folder in the ImageNet layout (`{train,val}/<class>/*.{jpg,png}`) in `data_dir`.
    ImageFolder,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Digits,
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::ImageFolder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Digits => "digits",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::ImageFolder => "image-folder",
        }
    }

    /// Where the data is looked for when no directory is given.
    pub fn default_dir(self) -> Option<PathBuf> {
        match self {
            DatasetKind::Digits => None,
            DatasetKind::Mnist => Some(PathBuf::from("data/mnist")),
            DatasetKind::FashionMnist => Some(PathBuf::from("/usr/share/datasets/fashion-mnist")),
            DatasetKind::Cifar10 => Some(PathBuf::from("../shared/data/cifar10-jpeg.tar.gz")),
            DatasetKind::ImageFolder => Some(PathBuf::from("data/images")),
        }
    }
}

/// The shape of one sample, `[C, H, W]` (channels, height, width).
pub type Image = [usize; 3];

/// Samples as flat `f32` rows with integer labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[len, dim]`, row-major.
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// Values per sample (`C·H·W`).
    pub dim: usize,
    /// The shape of one sample.
    pub shape: Image,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Gathers the samples at `idx` into a batch `[idx.len(), dim]`.
    pub fn batch(&self, idx: &[usize]) -> (Tensor<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.dim..(i + 1) * self.dim]);
        }
        (
            Tensor::from_vec(&[idx.len(), self.dim], x),
            idx.iter().map(|&i| self.y[i]).collect(),
        )
    }

    /// The samples at `idx` as a new dataset.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let (x, y) = self.batch(idx);
        Dataset {
            x: x.into_data(),
            y,
            dim: self.dim,
            shape: self.shape,
            classes: self.classes,
        }
    }
}

/// Train, optional validation, and test sets.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub test: Dataset,
}

/// Loads a dataset, holds out `val_fraction` of the training set (seeded by `seed`) and
/// normalises every split by the training set's mean and standard deviation.
pub fn load(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    val_fraction: f64,
    seed: u64,
) -> Result<Split> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::config(
            "val_fraction",
            format!("must be in [0, 1), got {val_fraction}"),
        ));
    }
    // Where the data comes from (also what a mismatch between the splits is reported against).
    let source = match kind {
        DatasetKind::Digits => PathBuf::from("<embedded digits.csv.gz>"),
        _ => data_dir
            .map(Path::to_path_buf)
            .or_else(|| kind.default_dir())
            .expect("file datasets have a default dir"),
    };
    let (mut train, mut test) = match kind {
        DatasetKind::Digits => digits::load()?,
        _ if !source.exists() => {
            return Err(Error::data(
                &source,
                "data not found (MNIST: see the README's 'Data' section; Fashion-MNIST: apt-get install dataset-fashion-mnist; CIFAR-10: --data-dir cifar10-jpeg.tar.gz)",
            ));
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => load_idx_pair(&source)?,
        DatasetKind::Cifar10 | DatasetKind::ImageFolder => image_folder::load(&source)?,
    };
    if train.shape != test.shape {
        return Err(Error::data(
            &source,
            format!(
                "train samples are {:?}, test samples {:?}",
                train.shape, test.shape
            ),
        ));
    }
    let mut val = None;
    if val_fraction > 0.0 {
        let mut idx: Vec<usize> = (0..train.len()).collect();
        idx.shuffle(&mut crate::rng(seed, 9));
        let n_val = ((train.len() as f64) * val_fraction).round().max(1.0) as usize;
        val = Some(train.subset(&idx[..n_val]));
        train = train.subset(&idx[n_val..]);
    }
    // Per channel, from the training set.
    let (c, plane) = (train.shape[0], train.shape[1] * train.shape[2]);
    let stats: Vec<(f32, f32)> = (0..c)
        .map(|ch| {
            let values: Vec<f32> = train
                .x
                .chunks_exact(plane)
                .skip(ch)
                .step_by(c)
                .flatten()
                .copied()
                .collect();
            moments(&values)
        })
        .collect();
    for d in [Some(&mut train), val.as_mut(), Some(&mut test)]
        .into_iter()
        .flatten()
    {
        for (i, p) in d.x.chunks_exact_mut(plane).enumerate() {
            let (mean, std) = stats[i % c];
            p.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
    }
    Ok(Split { train, val, test })
}

/// CIFAR-style augmentation of a batch `[N, C·H·W]` of images `shape`, in place: each image is
/// shifted by a random offset in `[−pad, pad]²` (the uncovered border is 0, the normalised
/// mean) — a random crop of the zero-padded image — and flipped left-right with probability ½.
pub fn augment_crop_flip(x: &mut Tensor<f32>, shape: Image, pad: usize, rng: &mut crate::Rng) {
    use rand::Rng;
    let [c, h, w] = shape;
    let p = pad as isize;
    for img in x.data_mut().chunks_exact_mut(c * h * w) {
        let (dy, dx) = (
            rng.random_range(-p as i64..=p as i64) as isize,
            rng.random_range(-p as i64..=p as i64) as isize,
        );
        let flip = rng.random_bool(0.5);
        let src = img.to_vec();
        for ch in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let (si, sj) = (
                        i as isize + dy,
                        if flip {
                            (w - 1 - j) as isize
                        } else {
                            j as isize
                        } + dx,
                    );
                    let inside = si >= 0 && sj >= 0 && (si as usize) < h && (sj as usize) < w;
                    img[(ch * h + i) * w + j] = if inside {
                        src[(ch * h + si as usize) * w + sj as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Mean and standard deviation of all values (accumulated in `f64`).
fn moments(x: &[f32]) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt().max(1e-8) as f32)
}

/// The four IDX files of an MNIST-style directory, raw or `.gz`, under either naming
/// (`train-images-idx3-ubyte` or `train-images.idx3-ubyte`).
fn load_idx_pair(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "not a directory of IDX files"));
    }
    let find = |stem: &str, kind: &str| -> Result<PathBuf> {
        let names = [
            format!("{stem}-{kind}-ubyte"),
            format!("{stem}.{kind}-ubyte"),
        ];
        names
            .iter()
            .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::data(
                    dir.join(&names[0]),
                    "missing (also looked for .gz and '.'-separated names)",
                )
            })
    };
    let part = |stem_img: &str, stem_lbl: &str| -> Result<Dataset> {
        let (pi, pl) = (find(stem_img, "idx3")?, find(stem_lbl, "idx1")?);
        let images = idx::read_idx(&pi)?;
        let labels = idx::read_idx(&pl)?;
        if images.dims.len() != 3 {
            return Err(Error::data(
                &pi,
                format!(
                    "expected 3 dimensions (count, rows, cols), header has {:?}",
                    images.dims
                ),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(Error::data(
                &pl,
                format!("expected 1 dimension (count), header has {:?}", labels.dims),
            ));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(Error::data(
                &pl,
                format!(
                    "{} labels for {} images in {}",
                    labels.dims[0],
                    images.dims[0],
                    pi.display()
                ),
            ));
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l >= 10) {
            return Err(Error::data(&pl, format!("label {bad} out of range 0..10")));
        }
        Ok(Dataset {
            x: images.data.iter().map(|&p| p as f32 / 255.0).collect(),
            y: labels.data.iter().map(|&l| l as u32).collect(),
            dim: images.dims[1] * images.dims[2],
            shape: [1, images.dims[1], images.dims[2]],
            classes: 10,
        })
    };
    let train = part("train-images", "train-labels")?;
    let test = part("t10k-images", "t10k-labels")?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_embedded_and_normalised() {
        let s = load(DatasetKind::Digits, None, 0.1, 0).unwrap();
        assert_eq!(
            s.train.len() + s.val.as_ref().unwrap().len() + s.test.len(),
            1797
        );
        assert_eq!(s.train.dim, 64);
        let (m, sd) = moments(&s.train.x);
        assert!(m.abs() < 1e-4 && (sd - 1.0).abs() < 1e-4, "{m} {sd}");
    }
}
