//! The ImageNet transforms (as torchvision runs them for the ResNet recipes): for training, a
//! random-resized crop (area 8–100% of the image, aspect ratio 3/4–4/3, resized to S × S) and a
//! horizontal flip with probability ½; for evaluation, a resize of the shorter side to
//! `S·256/224` and a centre crop of S × S. Images are decoded by the `image` crate.

use std::path::PathBuf;
use std::sync::Arc;

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng as _;

use crate::{Error, Result};

/// Refuse single images larger than this (no dataset here comes near it).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// An encoded image: bytes already in memory (from an archive) or a file read when needed.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Bytes { name: Arc<str>, bytes: Arc<[u8]> },
    File(Arc<PathBuf>),
}

impl Source {
    /// The name errors are reported against.
    pub fn name(&self) -> String {
        match self {
            Source::Bytes { name, .. } => name.to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// Decodes to RGB.
    pub fn decode(&self) -> Result<RgbImage> {
        let img = match self {
            Source::Bytes { bytes, .. } => image::load_from_memory(bytes),
            Source::File(p) => {
                let len = std::fs::metadata(p.as_ref())
                    .map_err(|source| Error::Io {
                        path: p.to_path_buf(),
                        source,
                    })?
                    .len();
                if len > MAX_IMAGE_BYTES {
                    return Err(Error::data(
                        p.as_ref(),
                        format!("{len} bytes is too large for an image"),
                    ));
                }
                let bytes = std::fs::read(p.as_ref()).map_err(|source| Error::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                image::load_from_memory(&bytes)
            }
        };
        let img = img.map_err(|e| Error::data(self.name(), format!("cannot decode image: {e}")))?;
        if img.width() == 0 || img.height() == 0 {
            return Err(Error::data(self.name(), "image has no pixels"));
        }
        Ok(img.to_rgb8())
    }
}

/// Evaluation: the shorter side resized to `round(size·256/224)`, then the centre `size × size`.
pub fn resize_centre_crop(img: &RgbImage, size: u32) -> RgbImage {
    let short = ((size as f64) * 256.0 / 224.0).round() as u32;
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (
            short,
            ((h as f64) * short as f64 / w as f64).round().max(1.0) as u32,
        )
    } else {
        (
            ((w as f64) * short as f64 / h as f64).round().max(1.0) as u32,
            short,
        )
    };
    let resized = imageops::resize(img, nw.max(size), nh.max(size), FilterType::Triangle);
    let (rw, rh) = resized.dimensions();
    imageops::crop_imm(&resized, (rw - size) / 2, (rh - size) / 2, size, size).to_image()
}

/// Training: a random crop of 8–100% of the area with aspect ratio in [3/4, 4/3] (log-uniform),
/// resized to `size × size`, flipped left-right with probability ½. After ten draws that do not
/// fit, the largest centred crop with the ratio clamped to the range (torchvision's fallback).
pub fn random_resized_crop(img: &RgbImage, size: u32, rng: &mut crate::Rng) -> RgbImage {
    let (w, h) = img.dimensions();
    let area = (w * h) as f64;
    let (lo, hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..=1.0);
        let ratio = rng.random_range(lo..=hi).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            crop = Some((x, y, cw, ch));
            break;
        }
    }
    let (x, y, cw, ch) = crop.unwrap_or_else(|| {
        let ratio = w as f64 / h as f64;
        let (cw, ch) = if ratio < 0.75 {
            (w, ((w as f64) / 0.75).round() as u32)
        } else if ratio > 4.0 / 3.0 {
            (((h as f64) * 4.0 / 3.0).round() as u32, h)
        } else {
            (w, h)
        };
        let (cw, ch) = (cw.clamp(1, w), ch.clamp(1, h));
        ((w - cw) / 2, (h - ch) / 2, cw, ch)
    });
    let cropped = imageops::crop_imm(img, x, y, cw, ch).to_image();
    let mut out = imageops::resize(&cropped, size, size, FilterType::Triangle);
    if rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// `[3, H, W]` values `(v/255 − mean_c)/std_c` into `out`.
pub fn to_chw(img: &RgbImage, norm: &[(f32, f32)], out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            let (mean, std) = norm.get(c).copied().unwrap_or((0.0, 1.0));
            out[c * plane + i] = (p[c] as f32 / 255.0 - mean) / std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn centre_crop_keeps_the_middle() {
        // 64×48 → shorter side 37 (32·256/224 = 36.6) → 49×37 → centre 32×32.
        let out = resize_centre_crop(&gradient(64, 48), 32);
        assert_eq!(out.dimensions(), (32, 32));
        let mid = out.get_pixel(16, 16);
        assert!(
            (mid[0] as i32 - 32).abs() <= 2 && (mid[1] as i32 - 24).abs() <= 2,
            "{mid:?}"
        );
    }

    #[test]
    fn random_resized_crops_are_square_and_vary() {
        let img = gradient(100, 60);
        let mut rng = crate::rng(0, 0);
        let crops: Vec<RgbImage> = (0..8)
            .map(|_| random_resized_crop(&img, 24, &mut rng))
            .collect();
        assert!(crops.iter().all(|c| c.dimensions() == (24, 24)));
        assert!(crops.windows(2).any(|p| p[0] != p[1]));
        // A 1×1 image still gives a crop (the fallback).
        let one = random_resized_crop(&gradient(1, 1), 4, &mut rng);
        assert_eq!(one.dimensions(), (4, 4));
    }
}
