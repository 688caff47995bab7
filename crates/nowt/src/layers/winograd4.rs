//! 3×3 stride-1 "same" convolutions by Winograd's F(4×4, 3×3) (Lavin & Gray 2016): each 4×4
//! block of outputs from a 6×6 tile of input, 36 multiplications per input channel where the
//! direct form takes 144 and F(2×2, 3×3) ([`super::winograd`]) 64 for the same 16 outputs.
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` per tile, summed over input channels, with the
//! interpolation points 0, ±1, ±2:
//!
//! ```text
//!      ⎡4  0 −5  0 1 0⎤        ⎡ 1/4    0     0 ⎤
//!      ⎢0 −4 −4  1 1 0⎥        ⎢−1/6  −1/6  −1/6⎥        ⎡1 1  1 1  1 0⎤
//! Bᵀ = ⎢0  4 −4 −1 1 0⎥    G = ⎢−1/6   1/6  −1/6⎥   Aᵀ = ⎢0 1 −1 2 −2 0⎥
//!      ⎢0 −2 −1  2 1 0⎥        ⎢1/24  1/12   1/6⎥        ⎢0 1  1 4  4 0⎥
//!      ⎢0  2 −1 −2 1 0⎥        ⎢1/24 −1/12   1/6⎥        ⎣0 1 −1 8 −8 1⎦
//!      ⎣0  4  0 −5 0 1⎦        ⎣  0     0     1 ⎦
//! ```
//!
//! The sum over channels is 36 GEMMs, one per tile position ξ: `M[ξ] = U[ξ] · V[ξ]`,
//! `U[ξ]: [C_out, C]`, `V[ξ]: [C, P]` over `P` tiles (of several images when planes are small).
//! Per output and input channel the tiles carry 36/16 = 2.25 transformed values where F(2×2,
//! 3×3) carries 4, and the GEMMs 2.25 multiplications where it has 4. The transforms run along
//! all of a band's tiles at once: each input row is split into its four column phases (tile `j`
//! reads padded columns `4j … 4j + 5`), each output row assembled from four.

use std::mem::MaybeUninit;

use super::winograd::{lanes, product, rows_of};
use crate::tensor::{ConvGeom, Real, View};

/// Tiles per GEMM (its width `P`): images are grouped, or large planes cut into bands of tile
/// rows, to reach about this many.
const TILES: usize = 128;

/// Images per task: enough that one GEMM covers about [`TILES`] tiles.
pub(super) fn group(g: &ConvGeom) -> usize {
    let (th, tw) = tiles_hw(g);
    (TILES / (th * tw)).max(1)
}

/// Tile rows and columns of a plane: `⌈H/4⌉ × ⌈W/4⌉`.
fn tiles_hw(g: &ConvGeom) -> (usize, usize) {
    (g.h.div_ceil(4), g.w.div_ceil(4))
}

/// `G v` for the three taps `v = (a, b, c)` along one axis of a kernel.
fn g_t<T: Real>([a, b, c]: [T; 3]) -> [T; 6] {
    let (q, s, t) = (T::of(0.25), T::of(1.0 / 6.0), T::of(1.0 / 12.0));
    let s24 = T::of(1.0 / 24.0);
    [
        q * a,
        T::zero() - s * (a + b + c),
        T::zero() - s * (a - b + c),
        s24 * a + t * b + s * c,
        s24 * a - t * b + s * c,
        c,
    ]
}

/// `Bᵀ d` for the six values `d` along one axis of an input tile.
fn b_t<T: Real>([d0, d1, d2, d3, d4, d5]: [T; 6]) -> [T; 6] {
    let (two, four, five) = (T::of(2.0), T::of(4.0), T::of(5.0));
    [
        four * d0 - five * d2 + d4,
        d4 + d3 - four * (d1 + d2),
        d4 - d3 + four * (d1 - d2),
        d4 - d2 + two * (d3 - d1),
        d4 - d2 - two * (d3 - d1),
        four * d1 - five * d3 + d5,
    ]
}

/// `Aᵀ m` for the six products `m` along one axis of a tile.
fn a_t<T: Real>([m0, m1, m2, m3, m4, m5]: [T; 6]) -> [T; 4] {
    let (two, four, eight) = (T::of(2.0), T::of(4.0), T::of(8.0));
    let (sum12, dif12, sum34, dif34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
    [
        m0 + sum12 + sum34,
        dif12 + two * dif34,
        sum12 + four * sum34,
        dif12 + eight * dif34 + m5,
    ]
}

/// `U[ξ][o][c] = (G w[o, c] Gᵀ)[ξ]` for weights `w: [C_out, C·9]` (rows `ld` apart):
/// `[36, C_out, C]`.
pub(super) fn weights<T: Real>(w: View<T>, c: usize) -> Vec<T> {
    let c_out = w.rows;
    let mut u = vec![T::zero(); 36 * c_out * c];
    for o in 0..c_out {
        for ci in 0..c {
            let g = &w.data[o * w.ld + ci * 9..][..9];
            // G g: 6 × 3, column by column.
            let cols: [[T; 6]; 3] = std::array::from_fn(|j| g_t([g[j], g[3 + j], g[6 + j]]));
            for r in 0..6 {
                let row = g_t([cols[0][r], cols[1][r], cols[2][r]]);
                for (s, v) in row.into_iter().enumerate() {
                    u[((6 * r + s) * c_out + o) * c + ci] = v;
                }
            }
        }
    }
    u
}

/// Per-task scratch: the transformed tiles `V`, the products `M`, and one channel's taps and
/// half-transformed tiles (all images of the task at once).
#[derive(Default)]
pub(super) struct Scratch<T> {
    v: Vec<T>,
    m: Vec<T>,
    taps: Vec<T>,
    half: Vec<T>,
}

/// Convolves the images `x: [n, C, H, W]` (geometry `g`, `n` ≤ [`group`]) with the transformed
/// weights `u` ([`weights`]) into `out: [n, C_out, H, W]`, every element written.
///
/// `V` is laid out `[36][C][P]` and `M` `[36][C_out][P]`, tiles numbered image by image, then
/// row by row: one channel's tiles of every image lie together, so each transform runs along
/// all `P` of them at once (ResNet-20's 8×8 planes have 4 tiles each).
pub(super) fn conv<T: Real>(
    g: &ConvGeom,
    u: &[T],
    c_out: usize,
    x: &[T],
    out: &mut [MaybeUninit<T>],
    s: &mut Scratch<T>,
) {
    let (c, h, w) = (g.c, g.h, g.w);
    let (th, tw) = tiles_hw(g);
    let n = x.len() / (c * h * w);
    let step = if n == 1 {
        (TILES / tw).clamp(1, th)
    } else {
        th
    };
    for b0 in (0..th).step_by(step) {
        let band = b0..(b0 + step).min(th);
        let p = n * band.len() * tw;
        s.v.resize(36 * c * p, T::zero());
        s.m.resize(36 * c_out * p, T::zero());
        s.taps.resize(36 * p, T::zero());
        s.half.resize(40 * p, T::zero());
        for ci in 0..c {
            let planes = (0..n).map(|i| &x[(i * c + ci) * h * w..][..h * w]);
            let scratch = (&mut s.taps[..], &mut s.half[..36 * p]);
            input_tiles(
                planes,
                (h, w),
                band.clone(),
                tw,
                scratch,
                &mut s.v,
                (c * p, ci * p),
            );
        }
        for xi in 0..36 {
            // [C_out, C] · [C, P] → [C_out, P]
            product(
                &mut s.m[xi * c_out * p..][..c_out * p],
                View::new(&u[xi * c_out * c..], c_out, c, false),
                rows_of(&s.v, xi, c, p, false),
            );
        }
        for o in 0..c_out {
            let planes = (0..n).map(|i| (i * c_out + o) * h * w);
            let at = (c_out * p, o * p);
            output_tiles(
                &s.m,
                at,
                band.clone(),
                tw,
                (out, planes),
                (h, w),
                &mut s.half,
            );
        }
    }
}

/// The `N` rows of `len` values of `buf` from row `first` on, apart.
fn rows_from<T, const N: usize>(buf: &mut [T], first: usize, len: usize) -> [&mut [T]; N] {
    let mut rows = buf[first * len..].chunks_exact_mut(len);
    std::array::from_fn(|_| rows.next().expect("enough rows"))
}

/// `Bᵀ d B` for every tile of tile rows `band` of one channel's `planes` (one per image,
/// `h × w`, padding 1) into `v[ξ·stride + at + q]` (`v`: `[36][C][P]`, `at` the channel's first
/// tile), `q` numbering the tiles image by image, then row by row (`P` tiles in all; `taps` and
/// `half` hold `36·P` values each).
///
/// Tile row `ti` reads input rows `4ti − 1 … 4ti + 4`, tile column `j` padded columns `4j …
/// 4j + 5`. First the six taps of every tile column of every input row, filed as
/// `taps[t][ρ][q]` by the row's place `ρ` in the tiles that read it (rows `4ti − 1 + ρ`;
/// the rows shared by two tile rows are filed twice): then `d B` for all of them at once
/// (`half[s][ρ][q]`), and `Bᵀ (d B)` along `ρ`, each one pass over all `P` tiles.
fn input_tiles<'a, T: Real + 'a>(
    planes: impl Iterator<Item = &'a [T]>,
    (h, w): (usize, usize),
    band: std::ops::Range<usize>,
    tw: usize,
    (taps, half): (&mut [T], &mut [T]),
    v: &mut [T],
    (stride, at): (usize, usize),
) {
    let q = band.len() * tw;
    let p = taps.len() / 36;
    let filed = |rho: usize, i: usize, r: usize| rho * p + i * q + r * tw;
    for (i, plane) in planes.enumerate() {
        for k in 0..4 * band.len() + 2 {
            let y = (4 * band.start + k).wrapping_sub(1);
            let row = (y < h).then(|| &plane[y * w..][..w]);
            // Rows k = 4r + ρ for ρ = 0…3 are row ρ of tile row r; rows 4r + 4, 4r + 5 (ρ = 0,
            // 1 of tile row r + 1) are rows 4 and 5 of tile row r as well.
            let (r, rho) = (k / 4, k % 4);
            let places = [(rho, r), (rho + 4, r.wrapping_sub(1))];
            let mut first = None;
            for (rho, r) in places
                .into_iter()
                .filter(|&(rho, r)| rho < 6 && r < band.len())
            {
                let place = filed(rho, i, r);
                match first {
                    None => {
                        let dsts = std::array::from_fn(|t| t * 6 * p + place);
                        row_taps(row, tw, taps, dsts);
                        first = Some(place);
                    }
                    Some(from) => (0..6).for_each(|t| {
                        let src = t * 6 * p + from;
                        taps.copy_within(src..src + tw, t * 6 * p + place)
                    }),
                }
            }
        }
    }
    // d B: the six taps of each (tile, row) into its six values.
    let ins: [&[T]; 6] = std::array::from_fn(|t| &taps[t * 6 * p..][..6 * p]);
    lanes(6 * p, ins, rows_from(half, 0, 6 * p), b_t);
    // Bᵀ (d B): the six rows ρ of each tile into V[6r + s].
    for s_ in 0..6 {
        let ins: [&[T]; 6] = std::array::from_fn(|rho| &half[(s_ * 6 + rho) * p..][..p]);
        let mut rest = &mut v[s_ * stride + at..];
        let outs: [&mut [T]; 6] = std::array::from_fn(|r| {
            let skip = if r < 5 { 6 * stride } else { p };
            let (row, tail) = std::mem::take(&mut rest).split_at_mut(skip);
            rest = tail;
            &mut row[..p]
        });
        lanes(p, ins, outs, b_t);
    }
}

/// The six taps of every tile column `j` of an input row into `taps[at[t] + j]`: tap `t` is
/// padded column `4j + t` (input column `4j + t − 1`, zero past either edge or for a row outside
/// the plane). Taps 1–4 are the row's four column phases, tap 0 is phase 3 one tile to the
/// left and tap 5 phase 0 one tile to the right.
#[inline]
fn row_taps<T: Real>(row: Option<&[T]>, tw: usize, taps: &mut [T], at: [usize; 6]) {
    let Some(row) = row else {
        at.iter().for_each(|&a| taps[a..][..tw].fill(T::zero()));
        return;
    };
    const B: usize = 8;
    let quads = row.len() / 4;
    let full = quads / B * B;
    for (b, chunk) in row[..4 * full].chunks_exact(4 * B).enumerate() {
        let c: &[T; 4 * B] = chunk.try_into().expect("a block");
        for phase in 0..4 {
            let v: [T; B] = std::array::from_fn(|j| c[4 * j + phase]);
            taps[at[1 + phase] + b * B..][..B].copy_from_slice(&v);
        }
    }
    for j in full..tw {
        for phase in 0..4 {
            taps[at[1 + phase] + j] = row.get(4 * j + phase).copied().unwrap_or(T::zero());
        }
    }
    taps[at[0]] = T::zero();
    taps.copy_within(at[4]..at[4] + tw - 1, at[0] + 1);
    taps.copy_within(at[1] + 1..at[1] + tw, at[5]);
    // Input column 4·tw lies past the row's end.
    taps[at[5] + tw - 1] = T::zero();
}

/// `Aᵀ m A` for every tile of tile rows `band` of one output channel: `m[ξ·stride + at + q]`
/// (`m`: `[36][C_out][P]`) holds position ξ's product for tile `q` (image by image, then row by
/// row); output rows `4ti … 4ti + 3` of each image's plane (`out[start ..][.. h·w]` for each
/// `start` of `planes`) are written where they exist. `y` is scratch of `40·P`.
fn output_tiles<T: Real>(
    m: &[T],
    (stride, at): (usize, usize),
    band: std::ops::Range<usize>,
    tw: usize,
    (out, planes): (&mut [MaybeUninit<T>], impl Iterator<Item = usize>),
    (h, w): (usize, usize),
    y: &mut [T],
) {
    let p = y.len() / 40;
    let q = band.len() * tw;
    let mr = |xi: usize| &m[xi * stride + at..][..p];
    // t[u·6 + s] = (Aᵀ m)[u][s], then ys[4u + v] = (Aᵀ m A)[u][v].
    let (t, ys) = y.split_at_mut(24 * p);
    for s_ in 0..6 {
        let ins = std::array::from_fn(|r| mr(6 * r + s_));
        let outs: [&mut [T]; 4] = split_rows(t, [s_, 6 + s_, 12 + s_, 18 + s_], p);
        lanes(p, ins, outs, a_t);
    }
    for u in 0..4 {
        let ins: [&[T]; 6] = std::array::from_fn(|s_| &t[(6 * u + s_) * p..][..p]);
        let outs: [&mut [T]; 4] = rows_from(&mut ys[..], 4 * u, p);
        lanes(p, ins, outs, a_t);
    }
    for (i, start) in planes.enumerate() {
        let plane = &mut out[start..][..h * w];
        for (k, ti) in band.clone().enumerate() {
            for u in 0..4 {
                let row = 4 * ti + u;
                if row >= h {
                    continue;
                }
                let line = &mut plane[row * w..][..w];
                let from = i * q + k * tw;
                let yv: [&[T]; 4] = std::array::from_fn(|v| &ys[(4 * u + v) * p + from..][..tw]);
                // Eight tiles' columns at a time through a fixed-size array (it vectorises).
                const B: usize = 8;
                let full = w / (4 * B) * B;
                for (b, chunk) in line[..4 * full].chunks_exact_mut(4 * B).enumerate() {
                    let vals: [T; 4 * B] = std::array::from_fn(|i| yv[i % 4][b * B + i / 4]);
                    for (o, v) in chunk.iter_mut().zip(vals) {
                        o.write(v);
                    }
                }
                for (j, quad) in line[4 * full..].chunks_mut(4).enumerate() {
                    for (v, o) in quad.iter_mut().enumerate() {
                        o.write(yv[v][full + j]);
                    }
                }
            }
        }
    }
}

/// Rows `at[0] < at[1] < …` (each `len` values) of `buf`, apart.
fn split_rows<'a, T, const N: usize>(
    buf: &'a mut [T],
    at: [usize; N],
    len: usize,
) -> [&'a mut [T]; N] {
    let mut rest = buf;
    let mut done = 0;
    std::array::from_fn(|i| {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut((at[i] - done) * len);
        let (row, tail) = tail.split_at_mut(len);
        rest = tail;
        done = at[i] + 1;
        row
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transforms are Lavin & Gray's: for a 1-d signal `d` of six values and a kernel `g`
    /// of three, `Aᵀ [(G g) ⊙ (Bᵀ d)]` is the four outputs of the valid correlation.
    #[test]
    fn one_dimensional_f4_3_is_a_correlation() {
        let d = [0.3, -1.2, 2.5, 0.7, -0.4, 1.9f64];
        let g = [0.5, -0.25, 1.5f64];
        let (gd, bd) = (g_t(g), b_t(d));
        let y = a_t(std::array::from_fn(|i| gd[i] * bd[i]));
        for (i, y) in y.into_iter().enumerate() {
            let want: f64 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!((y - want).abs() < 1e-14, "output {i}: {y}, want {want}");
        }
    }
}
