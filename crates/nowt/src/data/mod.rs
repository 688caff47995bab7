//! Datasets: the embedded 8×8 digits, MNIST and Fashion-MNIST (IDX), CIFAR-10/100 (binary or
//! image folders) and ImageNet-layout image folders, with seeded shuffling, an optional
//! validation split, per-channel normalisation and augmentation.

pub mod cifar_bin;
mod digits;
pub mod idx;
pub mod image_folder;
pub mod prefetch;
pub mod resize;
pub mod transform;

use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use transform::Source;

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
    /// CIFAR-10: the official binary files (`data_batch_*.bin`, a directory or the official
    /// `.tar.gz`) or an image folder (`{train,test}/<class>/*.jpg`, a directory or its `.tar.gz`).
    Cifar10,
    /// CIFAR-100 (fine labels): the official binary files (`train.bin`, `test.bin`).
    Cifar100,
    /// Any image folder in the ImageNet layout (`{train,val}/<class>/*.{jpg,png}`) in `data_dir`.
    ImageFolder,
    /// Samples the caller passed as arrays ([`from_arrays`]; the Python module's `data=`): not
    /// on disk, so a run of them is resumed by passing the same arrays again.
    Arrays,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 7] = [
        DatasetKind::Digits,
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::ImageFolder,
        DatasetKind::Arrays,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Digits => "digits",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::ImageFolder => "image-folder",
            DatasetKind::Arrays => "arrays",
        }
    }

    /// Where the data is looked for when no directory is given.
    pub fn default_dir(self) -> Option<PathBuf> {
        match self {
            DatasetKind::Digits | DatasetKind::Arrays => None,
            DatasetKind::Mnist => Some(PathBuf::from("data/mnist")),
            DatasetKind::FashionMnist => Some(PathBuf::from("/usr/share/datasets/fashion-mnist")),
            DatasetKind::Cifar10 => Some(PathBuf::from("../shared/data/cifar10-jpeg.tar.gz")),
            DatasetKind::Cifar100 => Some(PathBuf::from("data/cifar-100-binary")),
            DatasetKind::ImageFolder => Some(PathBuf::from("data/images")),
        }
    }
}

/// The shape of one sample, `[C, H, W]` (channels, height, width).
pub type Image = [usize; 3];

/// Samples with integer labels: decoded flat `f32` rows, or encoded images decoded (and
/// resized) per batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[len, dim]`, row-major, normalised (empty when the samples are `encoded`).
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// Values per sample (`C·H·W`).
    pub dim: usize,
    /// The shape of one sample (for encoded images: the size they are cropped to).
    pub shape: Image,
    pub classes: usize,
    /// Encoded images, decoded per batch with the ImageNet transforms (empty for `x`).
    pub encoded: Vec<Source>,
    /// Per-channel `(mean, std)` that decoded images are normalised by.
    pub norm: Vec<(f32, f32)>,
}

impl Dataset {
    /// Decoded samples `x: [len, C·H·W]` (not yet normalised).
    pub fn dense(x: Vec<f32>, y: Vec<u32>, shape: Image, classes: usize) -> Self {
        Self {
            x,
            y,
            dim: shape.iter().product(),
            shape,
            classes,
            encoded: Vec::new(),
            norm: Vec::new(),
        }
    }

    /// Encoded images, cropped to `size × size` when decoded.
    pub fn encoded(encoded: Vec<Source>, y: Vec<u32>, size: usize, classes: usize) -> Self {
        let shape = [3, size, size];
        Self {
            x: Vec::new(),
            y,
            dim: shape.iter().product(),
            shape,
            classes,
            encoded,
            norm: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Normalises decoded samples in place, channel by channel: `x ← (x − mean_c) / std_c`
    /// ([`Split::norm`]).
    pub fn normalise(&mut self, norm: &[(f32, f32)]) {
        let plane = self.shape[1] * self.shape[2];
        for (i, p) in self.x.chunks_exact_mut(plane).enumerate() {
            let (mean, std) = norm[i % self.shape[0]];
            p.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    pub fn is_encoded(&self) -> bool {
        !self.encoded.is_empty()
    }

    /// The samples at `idx` as an evaluation batch `[idx.len(), dim]` (encoded images: resized
    /// and centre-cropped).
    pub fn batch(&self, idx: &[usize]) -> Result<(Tensor<f32>, Vec<u32>)> {
        self.make_batch(idx, 0..idx.len(), None)
    }

    /// The samples at `idx` as a training batch: with `augment`, CIFAR-style crop and flip of
    /// decoded images, or random-resized crop and flip of encoded ones, drawn from `rng`.
    pub fn train_batch(
        &self,
        idx: &[usize],
        augment: bool,
        rng: &mut crate::Rng,
    ) -> Result<(Tensor<f32>, Vec<u32>)> {
        self.make_batch(idx, 0..idx.len(), augment.then_some(rng))
    }

    /// The samples `idx[keep]` of the training batch `idx`, exactly as in
    /// [`Dataset::train_batch`]`(idx, …)` with the same `rng` (the draws of the samples before
    /// `keep` are made and dropped): one rank's share of a global batch.
    pub fn train_batch_share(
        &self,
        idx: &[usize],
        keep: Range<usize>,
        augment: bool,
        rng: &mut crate::Rng,
    ) -> Result<(Tensor<f32>, Vec<u32>)> {
        self.make_batch(idx, keep, augment.then_some(rng))
    }

    fn make_batch(
        &self,
        all: &[usize],
        keep: Range<usize>,
        rng: Option<&mut crate::Rng>,
    ) -> Result<(Tensor<f32>, Vec<u32>)> {
        let idx = &all[keep.clone()];
        let y = idx.iter().map(|&i| self.y[i]).collect();
        if !self.is_encoded() {
            let mut x = Tensor::from_vec(&[idx.len(), self.dim], self.rows(idx));
            if let Some(rng) = rng {
                augment_crop_flip(&mut x, self.shape, 4, keep.start, rng);
            }
            return Ok((x, y));
        }
        // One seed per image of the whole batch, drawn in order, so the result does not depend
        // on the threads or on the share.
        let seeds: Option<Vec<u64>> = rng.map(|r| {
            let all: Vec<u64> = (0..keep.end).map(|_| r.next_u64()).collect();
            all[keep.clone()].to_vec()
        });
        let size = self.shape[1] as u32;
        let mut x = vec![0f32; idx.len() * self.dim];
        x.par_chunks_mut(self.dim)
            .zip(idx.par_iter())
            .enumerate()
            .try_for_each(|(k, (out, &i))| -> Result<()> {
                let img = self.encoded[i].decode()?;
                let img = match &seeds {
                    Some(s) => {
                        use rand::SeedableRng;
                        transform::random_resized_crop(
                            &img,
                            size,
                            &mut crate::Rng::seed_from_u64(s[k]),
                        )
                    }
                    None => transform::resize_centre_crop(&img, size),
                };
                transform::to_chw(&img, &self.norm, out);
                Ok(())
            })?;
        Ok((Tensor::from_vec(&[idx.len(), self.dim], x), y))
    }

    /// The decoded rows at `idx`, concatenated (empty for encoded samples).
    fn rows(&self, idx: &[usize]) -> Vec<f32> {
        if self.is_encoded() {
            return Vec::new();
        }
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.dim..(i + 1) * self.dim]);
        }
        x
    }

    /// The samples at `idx` as a new dataset.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.rows(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            encoded: if self.is_encoded() {
                idx.iter().map(|&i| self.encoded[i].clone()).collect()
            } else {
                Vec::new()
            },
            norm: self.norm.clone(),
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
    /// The per-channel `(mean, std)` of the training set that every split is normalised by
    /// (`x ← (x − mean) / std`, on values as decoded: 8-bit images as `k/255`). Checkpoints
    /// record it, so a model can be evaluated on raw inputs elsewhere.
    pub norm: Vec<(f32, f32)>,
}

impl Split {
    /// The data's identity, not its path: a CRC-32 over every split's sizes, labels and decoded
    /// values (for images kept encoded, their names or bytes and the normalisation), as
    /// `crc32:<hex>`. A run records it, and resuming from another data location checks it.
    pub fn fingerprint(&self) -> String {
        let mut h = crc32fast::Hasher::new();
        for d in [Some(&self.train), self.val.as_ref(), Some(&self.test)]
            .into_iter()
            .flatten()
        {
            for n in [d.len(), d.dim, d.classes] {
                h.update(&(n as u64).to_le_bytes());
            }
            for y in &d.y {
                h.update(&y.to_le_bytes());
            }
            for v in &d.x {
                h.update(&v.to_le_bytes());
            }
            for (m, s) in &d.norm {
                h.update(&m.to_le_bytes());
                h.update(&s.to_le_bytes());
            }
            for src in &d.encoded {
                match src {
                    transform::Source::Bytes { bytes, .. } => h.update(bytes),
                    transform::Source::File(p) => {
                        // The file's name within its class folder, not where the folder is.
                        let tail: Vec<_> = p.iter().rev().take(2).collect();
                        h.update(format!("{tail:?}").as_bytes());
                    }
                }
            }
        }
        format!("crc32:{:08x}", h.finalize())
    }
}

/// How to load a dataset beyond which one and where.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Fraction of the training set held out for validation (seeded by `seed`), in `[0, 1)`.
    pub val_fraction: f64,
    pub seed: u64,
    /// Image folders: 0 keeps the images' own size (all must share it); `S > 0` keeps them
    /// encoded and decodes per batch with the ImageNet transforms to `S × S`.
    pub image_size: usize,
    /// Use only this many training samples (a seeded random subset); 0: all.
    pub train_limit: usize,
    /// Use only this many test samples (a seeded random subset); 0: all.
    pub test_limit: usize,
}

/// Training images the normalisation of encoded datasets is estimated from.
const NORM_SAMPLE: usize = 500;

/// Which samples of a dataset's `n_train` training and `n_test` test samples a run uses: the
/// validation hold-out (a seeded shuffle, its first `val_fraction`), then seeded random
/// subsets of `train_limit` and `test_limit` (kept in their order), as indices into the files.
struct Selection {
    train: Vec<usize>,
    val: Option<Vec<usize>>,
    test: Vec<usize>,
}

impl Selection {
    fn new(n_train: usize, n_test: usize, opts: &LoadOptions) -> Self {
        let seed = opts.seed;
        let mut train: Vec<usize> = (0..n_train).collect();
        let mut val = None;
        if opts.val_fraction > 0.0 {
            train.shuffle(&mut crate::rng(seed, 9));
            let n_val = ((n_train as f64) * opts.val_fraction).round().max(1.0) as usize;
            val = Some(train[..n_val.min(n_train)].to_vec());
            train.drain(..n_val.min(n_train));
        }
        let limit = |idx: Vec<usize>, limit: usize, stream: u64| {
            if limit == 0 || limit >= idx.len() {
                return idx;
            }
            let mut pick: Vec<usize> = (0..idx.len()).collect();
            pick.shuffle(&mut crate::rng(seed, stream));
            pick.truncate(limit);
            pick.sort_unstable();
            pick.into_iter().map(|k| idx[k]).collect()
        };
        Self {
            train: limit(train, opts.train_limit, 10),
            val,
            test: limit((0..n_test).collect(), opts.test_limit, 11),
        }
    }
}

/// Loads a dataset, holds out `val_fraction` of the training set (seeded by `seed`), keeps the
/// requested subsets and normalises every split per channel by the training set's mean and
/// standard deviation (encoded images: estimated on up to 500 of them).
pub fn load(kind: DatasetKind, data_dir: Option<&Path>, opts: &LoadOptions) -> Result<Split> {
    let LoadOptions {
        val_fraction,
        image_size,
        ..
    } = *opts;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::config(
            "val_fraction",
            format!("must be in [0, 1), got {val_fraction}"),
        ));
    }
    if kind == DatasetKind::Arrays {
        return Err(Error::config(
            "dataset",
            "arrays: the samples were given as arrays (nowt.train(data=...) in Python), not files; pass the same arrays again to continue the run",
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
    let binary = |v| image_size == 0 && cifar_bin::is_binary(&source, v);
    let folder = kind == DatasetKind::ImageFolder
        || (kind == DatasetKind::Cifar10 && !binary(cifar_bin::Variant::Cifar10));
    if kind != DatasetKind::Digits && !source.exists() {
        return Err(Error::data(
            &source,
            "data not found (MNIST: see the README's 'Data' section; Fashion-MNIST: apt-get install dataset-fashion-mnist; CIFAR-10: --data-dir cifar10-jpeg.tar.gz)",
        ));
    }
    let (train, val, test) = if folder {
        // Image folders are chosen from before decoding, so a small --train-limit decodes
        // only the images it uses.
        let (train_files, test_files, classes) = image_folder::read(&source)?;
        let pick = Selection::new(train_files.len(), test_files.len(), opts);
        let take = |files: &image_folder::Files, idx: &[usize]| -> image_folder::Files {
            idx.iter().map(|&i| files[i].clone()).collect()
        };
        let build = |files| image_folder::build(&source, files, &classes, image_size);
        (
            build(take(&train_files, &pick.train))?,
            match &pick.val {
                Some(v) => Some(build(take(&train_files, v))?),
                None => None,
            },
            build(take(&test_files, &pick.test))?,
        )
    } else {
        let (train, test) = match kind {
            DatasetKind::Digits => digits::load()?,
            DatasetKind::Mnist | DatasetKind::FashionMnist => load_idx_pair(&source)?,
            DatasetKind::Cifar100 => cifar_bin::load(&source, cifar_bin::Variant::Cifar100)?,
            _ => cifar_bin::load(&source, cifar_bin::Variant::Cifar10)?,
        };
        select(train, test, opts)
    };
    finish(kind, &source, train, val, test, image_size)
}

/// The samples of decoded `train` and `test` a run uses ([`Selection`]): the validation
/// hold-out, then the subsets asked for.
fn select(
    train: Dataset,
    test: Dataset,
    opts: &LoadOptions,
) -> (Dataset, Option<Dataset>, Dataset) {
    let pick = Selection::new(train.len(), test.len(), opts);
    let chosen = |d: Dataset, idx: &[usize]| {
        if idx.len() == d.len() && idx.iter().enumerate().all(|(i, &j)| i == j) {
            d
        } else {
            d.subset(idx)
        }
    };
    let val = pick.val.as_ref().map(|v| train.subset(v));
    (chosen(train, &pick.train), val, chosen(test, &pick.test))
}

/// Samples given as arrays (the Python module's `data=`): decoded `train` and `test` (values as
/// the built-in loaders give them, 8-bit images as `k/255`), and `val` if the caller holds out
/// their own. The validation hold-out (`val_fraction`, only without `val`), subsets and the
/// per-channel normalisation are the built-in datasets'.
pub fn from_arrays(
    train: Dataset,
    test: Dataset,
    val: Option<Dataset>,
    opts: &LoadOptions,
) -> Result<Split> {
    let (train, picked_val, test) = select(train, test, opts);
    let val = match (val, picked_val) {
        (Some(_), Some(_)) => return Err(Error::config(
            "val_fraction",
            "a validation pair was given with the arrays: set val_fraction = 0 (or give no pair)",
        )),
        (v, picked) => v.or(picked),
    };
    let source = PathBuf::from("<arrays>");
    finish(
        DatasetKind::Arrays,
        &source,
        train,
        val,
        test,
        opts.image_size,
    )
}

/// The splits resized where asked, checked to agree, and normalised per channel by the training
/// set's mean and standard deviation (encoded images: estimated on up to 500 of them).
fn finish(
    kind: DatasetKind,
    source: &Path,
    mut train: Dataset,
    mut val: Option<Dataset>,
    mut test: Dataset,
    image_size: usize,
) -> Result<Split> {
    if image_size > 0 && !train.is_encoded() {
        if !matches!(kind, DatasetKind::Mnist | DatasetKind::FashionMnist) {
            return Err(Error::config(
                "image_size",
                format!(
                    "only image folders, mnist and fashion-mnist are resized; {} comes decoded \
                     at {:?}",
                    kind.name(),
                    train.shape
                ),
            ));
        }
        for d in [Some(&mut train), val.as_mut(), Some(&mut test)]
            .into_iter()
            .flatten()
        {
            resize_8bit(d, image_size);
        }
    }
    if train.shape != test.shape {
        return Err(Error::data(
            source,
            format!(
                "train samples are {:?}, test samples {:?}",
                train.shape, test.shape
            ),
        ));
    }
    let stats = if train.is_encoded() {
        let n = train.len().min(NORM_SAMPLE);
        let (x, _) = train.batch(&(0..n).collect::<Vec<_>>())?;
        channel_moments(x.data(), train.shape)
    } else {
        channel_moments(&train.x, train.shape)
    };
    for d in [Some(&mut train), val.as_mut(), Some(&mut test)]
        .into_iter()
        .flatten()
    {
        if d.is_encoded() {
            d.norm = stats.clone();
            continue;
        }
        d.normalise(&stats);
    }
    Ok(Split {
        train,
        val,
        test,
        norm: stats,
    })
}

/// Resizes decoded 8-bit images (values `k/255`) to `size × size`, plane by plane, as Pillow's
/// bilinear `resize` does ([`resize::bilinear_u8`]): BioTorch's `Resize((32, 32))` of
/// (Fashion-)MNIST.
fn resize_8bit(d: &mut Dataset, size: usize) {
    let [c, h, w] = d.shape;
    let x: Vec<f32> =
        d.x.par_chunks(h * w)
            .flat_map_iter(|plane| {
                let bytes: Vec<u8> = plane.iter().map(|&v| (v * 255.0).round() as u8).collect();
                resize::bilinear_u8(&bytes, (h, w), (size, size))
                    .into_iter()
                    .map(|p| p as f32 / 255.0)
            })
            .collect();
    d.x = x;
    d.shape = [c, size, size];
    d.dim = c * size * size;
}

/// Per-channel mean and standard deviation of samples `x` of `shape`.
fn channel_moments(x: &[f32], shape: Image) -> Vec<(f32, f32)> {
    let (c, plane) = (shape[0], shape[1] * shape[2]);
    (0..c)
        .map(|ch| moments(|| x.chunks_exact(plane).skip(ch).step_by(c).flatten().copied()))
        .collect()
}

/// CIFAR-style augmentation of a batch `[N, C·H·W]` of images `shape`, in place: each image is
/// shifted by a random offset in `[−pad, pad]²` (the uncovered border is 0, the normalised
/// mean) — a random crop of the zero-padded image — and flipped left-right with probability ½.
/// `x` holds the images from position `first` of a batch: the draws of the `first` images
/// before them are made first and dropped, so a share of a batch is augmented as in the whole.
pub fn augment_crop_flip(
    x: &mut Tensor<f32>,
    shape: Image,
    pad: usize,
    first: usize,
    rng: &mut crate::Rng,
) {
    use rand::Rng;
    let [c, h, w] = shape;
    let p = pad as isize;
    let mut draw = || {
        let (dy, dx) = (
            rng.random_range(-p as i64..=p as i64) as isize,
            rng.random_range(-p as i64..=p as i64) as isize,
        );
        (dy, dx, rng.random_bool(0.5))
    };
    for _ in 0..first {
        draw();
    }
    for img in x.data_mut().chunks_exact_mut(c * h * w) {
        let (dy, dx, flip) = draw();
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

/// The members of a `.tar.gz` that `keep` accepts, in archive order: (name in the archive,
/// bytes). A member over `max_bytes` is refused (`{member}: N bytes is too large for {what}`),
/// and so is a corrupt or truncated archive; both name `archive`.
pub(crate) fn tar_gz_members(
    reader: impl std::io::Read,
    archive: &Path,
    max_bytes: u64,
    what: &str,
    mut keep: impl FnMut(&Path) -> bool,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::data(archive, format!("corrupt or truncated archive: {e}"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut out = Vec::new();
    for entry in tar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let name = entry.path().map_err(io)?.into_owned();
        if !keep(&name) {
            continue;
        }
        if entry.size() > max_bytes {
            let msg = format!(
                "{}: {} bytes is too large for {what}",
                name.display(),
                entry.size()
            );
            return Err(Error::data(archive, msg));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(max_bytes)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// Mean and standard deviation of the values `x()` yields (two passes, accumulated in `f64`,
/// nothing collected).
fn moments<I: Iterator<Item = f32>>(x: impl Fn() -> I) -> (f32, f32) {
    let (n, sum) = x().fold((0usize, 0f64), |(n, s), v| (n + 1, s + v as f64));
    let n = n.max(1) as f64;
    let mean = sum / n;
    let var = x().map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
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
        Ok(Dataset::dense(
            images.data.iter().map(|&p| p as f32 / 255.0).collect(),
            labels.data.iter().map(|&l| l as u32).collect(),
            [1, images.dims[1], images.dims[2]],
            10,
        ))
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
        let opts = LoadOptions {
            val_fraction: 0.1,
            ..Default::default()
        };
        let s = load(DatasetKind::Digits, None, &opts).unwrap();
        assert_eq!(
            s.train.len() + s.val.as_ref().unwrap().len() + s.test.len(),
            1797
        );
        assert_eq!(s.train.dim, 64);
        let (m, sd) = moments(|| s.train.x.iter().copied());
        assert!(m.abs() < 1e-4 && (sd - 1.0).abs() < 1e-4, "{m} {sd}");
    }
}
