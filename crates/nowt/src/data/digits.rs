//! The 8×8 UCI handwritten digits (1,797 images, 10 classes), embedded in the binary so that
//! `nowt train` works with no download. Source: scikit-learn's `digits.csv.gz` (BSD-3, data
//! CC BY 4.0); see `data/digits-README.txt`.

use std::io::Read;

use rand::seq::SliceRandom;

use super::Dataset;
use crate::{Error, Result};

const DIGITS_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
/// Test samples held out, by a fixed shuffle independent of the run's seed.
const TEST: usize = 360;

/// Train (1,437) and test (360) sets, pixels scaled from 0–16 to 0–1.
pub fn load() -> Result<(Dataset, Dataset)> {
    let path = "<embedded digits.csv.gz>";
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::data(path, e.to_string()))?;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::data(path, format!("line {}: {e}", i + 1)))?;
        if vals.len() != 65 {
            return Err(Error::data(
                path,
                format!("line {}: {} values, expected 65", i + 1, vals.len()),
            ));
        }
        x.extend(vals[..64].iter().map(|v| v / 16.0));
        y.push(vals[64] as u32);
    }
    let all = Dataset::dense(x, y, [1, 8, 8], 10);
    let mut idx: Vec<usize> = (0..all.len()).collect();
    idx.shuffle(&mut crate::rng(0x5eed_d161, 0));
    Ok((all.subset(&idx[TEST..]), all.subset(&idx[..TEST])))
}
