//! 3×3 stride-1 "same" convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray
//! 2016, "Fast Algorithms for Convolutional Neural Networks"): each 2×2 block of outputs from a
//! 4×4 tile of input with 16 multiplications per input channel instead of 36.
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` per tile, summed over input channels, with
//!
//! ```text
//!      ⎡1  0 −1  0⎤        ⎡ 1   0   0 ⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢1/2 1/2 1/2⎥    Aᵀ = ⎡1 1  1  0⎤
//!      ⎢0 −1  1  0⎥        ⎢1/2 −1/2 1/2⎥        ⎣0 1 −1 −1⎦
//!      ⎣0  1  0 −1⎦        ⎣ 0   0   1 ⎦
//! ```
//!
//! The sum over channels is 16 GEMMs, one per tile position ξ:
//! `M[ξ] = U[ξ] · V[ξ]` with `U[ξ]: [C_out, C]` (transformed weights), `V[ξ]: [C, P]`
//! (transformed input tiles) and `P` tiles — of several images when planes are small, so
//! that every GEMM is wide. The transforms use only additions and halvings, and each runs along
//! all of a band's tiles at once (even and odd input columns kept apart), so they vectorise.

use std::mem::MaybeUninit;

use super::avx;
use crate::tensor::{gemm_slice, ConvGeom, Real, View};

/// Tiles per GEMM (its width `P`): images are grouped, or large planes cut into bands of tile
/// rows, to reach about this many.
const TILES: usize = 256;

/// Tiles the weight gradient's sums group images up to (planes of fewer tiles: ResNet-20's
/// 16×16 ones, two images per block instead of four); larger planes are transformed in bands
/// of [`TILES`] as in [`conv`].
const SUM_TILES: usize = 128;

/// Channels in or out above which convolutions stay on im2col: the weight transform runs on
/// one thread and `U` holds `16·C·C_out` values, and ImageNet ResNet-18's 512-channel 7×7
/// layers at batch 8 measured slower by Winograd (`nowt bench --model resnet18 --image-size 224
/// --batch 8`: 1082 ms/step with them, 999 without).
const MAX_CHANNELS: usize = 256;

/// Whether a convolution of geometry `g` to `c_out` channels is one this module computes:
/// 3×3, stride 1, padding 1, at most [`MAX_CHANNELS`] channels either side.
pub(super) fn applies(g: &ConvGeom, c_out: usize) -> bool {
    g.k == 3 && g.stride == 1 && g.pad == 1 && g.c.max(c_out) <= MAX_CHANNELS
}

/// Images per task: enough that one GEMM covers about [`TILES`] tiles.
pub(super) fn group(g: &ConvGeom) -> usize {
    group_of(g, TILES)
}

/// Images that together have about `tiles` tiles (at least one).
fn group_of(g: &ConvGeom, tiles: usize) -> usize {
    (tiles / tiles_hw(g).0 / tiles_hw(g).1).max(1)
}

/// Tile rows and columns of a plane: `⌈H/2⌉ × ⌈W/2⌉`.
fn tiles_hw(g: &ConvGeom) -> (usize, usize) {
    (g.h.div_ceil(2), g.w.div_ceil(2))
}

/// `U[ξ][o][c] = (G w[o, c] Gᵀ)[ξ]` for weights `w: [C_out, C·9]` (rows `ld` apart):
/// `[16, C_out, C]`.
pub(super) fn weights<T: Real>(w: View<T>, c: usize) -> Vec<T> {
    let c_out = w.rows;
    let half = T::of(0.5);
    let mut u = vec![T::zero(); 16 * c_out * c];
    for o in 0..c_out {
        for ci in 0..c {
            let g = &w.data[o * w.ld + ci * 9..][..9];
            // G g: 4 × 3.
            let mut t = [[T::zero(); 3]; 4];
            for j in 0..3 {
                let (a, b, cc) = (g[j], g[3 + j], g[6 + j]);
                t[0][j] = a;
                t[1][j] = half * (a + b + cc);
                t[2][j] = half * (a - b + cc);
                t[3][j] = cc;
            }
            // (G g) Gᵀ: 4 × 4.
            for (r, t) in t.iter().enumerate() {
                let row = [
                    t[0],
                    half * (t[0] + t[1] + t[2]),
                    half * (t[0] - t[1] + t[2]),
                    t[2],
                ];
                for (s, v) in row.into_iter().enumerate() {
                    u[((4 * r + s) * c_out + o) * c + ci] = v;
                }
            }
        }
    }
    u
}

/// Per-task scratch: the transformed tiles `V`, the products `M`, the row transforms of one
/// plane, the outputs of one plane, and the plane's input rows split by column parity.
#[derive(Default)]
pub(super) struct Scratch<T> {
    v: Vec<T>,
    m: Vec<T>,
    rows: Vec<T>,
    out: Vec<T>,
    line: Vec<T>,
}

/// Convolves the images `x: [n, C, H, W]` (geometry `g`, `n` ≤ [`group`]) with the transformed
/// weights `u` ([`weights`]) into `out: [n, C_out, H, W]`, every element written.
///
/// `V` is laid out `[16][C][P]` and `M` `[16][C_out][P]` (each GEMM's operands dense), tiles
/// numbered image by image, then row by row: so each transform runs along all of an image's
/// tiles at once.
pub(super) fn conv<T: Real>(
    g: &ConvGeom,
    u: &[T],
    c_out: usize,
    x: &[T],
    out: &mut [MaybeUninit<T>],
    s: &mut Scratch<T>,
) {
    let (c, h, w) = (g.c, g.h, g.w);
    let tw = tiles_hw(g).1;
    let n = x.len() / (c * h * w);
    for band in bands(g, n) {
        let (q, p) = s.transform_input(g, x, n, c_out, band.clone());
        products(&mut s.m, u, &s.v, (c_out, c, p));
        for i in 0..n {
            for o in 0..c_out {
                let plane = &mut out[(i * c_out + o) * h * w..][..h * w];
                let at = (c_out * p, o * p + i * q);
                output_tiles(&s.m, at, band.clone(), tw, plane, (h, w), &mut s.out);
            }
        }
    }
}

/// The weight gradient's 16 sums over the tiles of the images `x: [n, C, H, W]` and their
/// errors `delta: [n, C_out, H, W]`: `S[ξ] = Σ_tiles D[ξ] · V[ξ]ᵀ`, `[16, C_out, C]`, with
/// `D = A δ Aᵀ` the transformed 2×2 error tiles — the transpose of the forward's
/// `Y = Aᵀ (U ⊙ V) A` in `U` — so that `grad_W[o, c] = Gᵀ S[·, o, c] G` ([`weight_grad`]).
/// Each GEMM runs along the tiles (`K = P`).
pub(super) fn weight_sums<T: Real>(
    g: &ConvGeom,
    c_out: usize,
    x: &[T],
    delta: &[T],
    s: &mut Scratch<T>,
) -> Vec<T> {
    let (c, h, w) = (g.c, g.h, g.w);
    let tw = tiles_hw(g).1;
    let per = group_of(g, SUM_TILES);
    let mut sums = vec![T::zero(); 16 * c_out * c];
    let (in_len, out_len) = (c * h * w, c_out * h * w);
    for (xs, ds) in x.chunks(per * in_len).zip(delta.chunks(per * out_len)) {
        let n = xs.len() / in_len;
        for band in bands(g, n) {
            let (q, p) = s.transform_input(g, xs, n, c_out, band.clone());
            for i in 0..n {
                for o in 0..c_out {
                    let plane = &ds[(i * c_out + o) * h * w..][..h * w];
                    let scratch = (&mut s.rows[..], &mut s.line[..]);
                    let at = (c_out * p, o * p + i * q);
                    error_tiles(plane, (h, w), band.clone(), tw, scratch, &mut s.m, at);
                }
            }
            for xi in 0..16 {
                // [C_out, P] · [C, P]ᵀ → [C_out, C], added up.
                let sum = &mut sums[xi * c_out * c..][..c_out * c];
                dots_add(
                    sum,
                    rows_of(&s.m, xi, c_out, p, false),
                    rows_of(&s.v, xi, c, p, false),
                );
            }
        }
    }
    sums
}

/// Whether [`response_sums`] computes `grad_W(x, Σ_k a_k conv(x, W_k))` of `terms` kernels for
/// geometry `g`: one or two kernels ([`response_tiles`]), on planes of even height and width, so
/// that every 2×2 output tile lies inside the plane (a tile past the edge would need its
/// outside outputs zeroed between the forward and the gradient).
pub(super) fn responds(g: &ConvGeom, terms: usize) -> bool {
    (1..=2).contains(&terms) && g.h.is_multiple_of(2) && g.w.is_multiple_of(2)
}

/// [`weight_sums`] of the images `x: [n, C, H, W]` and the errors `δ = Σ_k a_k · conv(x, W_k)`
/// (`a` the weights `a_k`; `u` the kernels `W_k` stacked, `[K·C_out, C·9]`, transformed by
/// [`weights`]), without leaving the transformed domain: per tile the products `M_k = U_k ⊙ V`
/// give the outputs `Aᵀ M_k A`, whose weighted sum's transformed error `A δ Aᵀ` is formed in
/// place, and the sums reuse the tiles' `V`. The weight mirror's `ηᵀ ξ` with `η = conv(ξ, W)`:
/// one input transform instead of two or more, no output plane written and read back. Bit for
/// bit [`conv`] per kernel, the weighted sum, then [`weight_sums`] (the same operations in the
/// same order, the images grouped as there); planes as [`responds`] allows.
pub(super) fn response_sums<T: Real>(
    g: &ConvGeom,
    u: &[T],
    a: &[T],
    c_out: usize,
    x: &[T],
    s: &mut Scratch<T>,
) -> Vec<T> {
    debug_assert!(
        responds(g, a.len()),
        "response_sums: one or two kernels, even planes"
    );
    let (c, kc) = (g.c, a.len() * c_out);
    let tw = tiles_hw(g).1;
    let per = group_of(g, SUM_TILES);
    let mut sums = vec![T::zero(); 16 * c_out * c];
    let in_len = c * g.h * g.w;
    for xs in x.chunks(per * in_len) {
        let n = xs.len() / in_len;
        for band in bands(g, n) {
            let (q, p) = s.transform_input(g, xs, n, kc, band.clone());
            products(&mut s.m, u, &s.v, (kc, c, p));
            for i in 0..n {
                for o in 0..c_out {
                    response_tiles(
                        &mut s.m,
                        a,
                        (kc * p, c_out * p, o * p + i * q),
                        band.len() * tw,
                    );
                }
            }
            for xi in 0..16 {
                // Term 0's rows hold the transformed errors.
                let sum = &mut sums[xi * c_out * c..][..c_out * c];
                dots_add(
                    sum,
                    View::new(&s.m[xi * kc * p..], c_out, p, false),
                    rows_of(&s.v, xi, c, p, false),
                );
            }
        }
    }
    sums
}

/// For the `q` tiles of one output channel, whose term `k` products lie at
/// `m[ξ·stride + k·term + at]`: `A (Σ_k a_k · Aᵀ M_k A) Aᵀ`, into term 0's place. Each output
/// tile as [`output_tiles`] computes it, the weighted sum in order (`a₀ η₀ + a₁ η₁ + …`; a
/// lone term of weight 1 as it is), transformed as [`error_tiles`] transforms an error tile:
/// each step the same operation in the same order as the separate passes. One or two terms.
fn response_tiles<T: Real>(m: &mut [T], a: &[T], place: (usize, usize, usize), q: usize) {
    match *a {
        [a0] => weighted_tiles(m, [a0], place, q),
        [a0, a1] => weighted_tiles(m, [a0, a1], place, q),
        _ => unreachable!("response_tiles: {} terms", a.len()),
    }
}

/// [`response_tiles`] for `K` terms: eight tiles at a time, each term's 16 rows read into
/// fixed-size arrays, so that the tiles' math vectorises across the eight.
fn weighted_tiles<T: Real, const K: usize>(
    m: &mut [T],
    a: [T; K],
    (stride, term, at): (usize, usize, usize),
    q: usize,
) {
    // `Aᵀ m A`, as output_tiles: down the columns, then along the rows.
    let out_t = |[a, b, c, d]: [T; 4]| [a + b + c, b - c - d];
    let output = |v: &[T; 16]| -> [T; 4] {
        let col: [[T; 2]; 4] =
            std::array::from_fn(|s| out_t([v[s], v[4 + s], v[8 + s], v[12 + s]]));
        let [y0, y1] = out_t(std::array::from_fn(|s| col[s][0]));
        let [y2, y3] = out_t(std::array::from_fn(|s| col[s][1]));
        [y0, y1, y2, y3]
    };
    let plain = K == 1 && a[0] == T::one();
    let tile = |v: &[[T; 16]; K]| -> [T; 16] {
        let mut y = output(&v[0]);
        if !plain {
            y = y.map(|y| a[0] * y);
            for k in 1..K {
                let z = output(&v[k]);
                y = std::array::from_fn(|i| y[i] + a[k] * z[i]);
            }
        }
        // `A δ Aᵀ`, as error_tiles: along each row of δ, then down the columns.
        let rows = [a_t([y[0], y[1]]), a_t([y[2], y[3]])];
        std::array::from_fn(|xi| a_t([rows[0][xi % 4], rows[1][xi % 4]])[xi / 4])
    };
    let at_of = |k: usize, xi: usize| xi * stride + k * term + at;
    const L: usize = 8;
    let full = q / L * L;
    for j0 in (0..full).step_by(L) {
        let x: [[[T; L]; 16]; K] = std::array::from_fn(|k| {
            std::array::from_fn(|xi| m[at_of(k, xi) + j0..][..L].try_into().unwrap())
        });
        let mut y = [[T::zero(); L]; 16];
        for l in 0..L {
            let r = tile(&std::array::from_fn(|k| {
                std::array::from_fn(|xi| x[k][xi][l])
            }));
            for (xi, v) in r.into_iter().enumerate() {
                y[xi][l] = v;
            }
        }
        for (xi, y) in y.iter().enumerate() {
            m[at_of(0, xi) + j0..][..L].copy_from_slice(y);
        }
    }
    for j in full..q {
        let r = tile(&std::array::from_fn(|k| {
            std::array::from_fn(|xi| m[at_of(k, xi) + j])
        }));
        for (xi, v) in r.into_iter().enumerate() {
            m[at_of(0, xi) + j] = v;
        }
    }
}

/// `grad_W[o, c] = Gᵀ S[·, o, c] G` from the sums `S: [16, C_out, C]` of [`weight_sums`]:
/// `[C_out, C·9]`.
pub(super) fn weight_grad<T: Real>(sums: &[T], c_out: usize, c: usize) -> Vec<T> {
    let half = T::of(0.5);
    // Gᵀ applied to four values: (s0 + (s1 + s2)/2, (s1 − s2)/2, (s1 + s2)/2 + s3).
    let gt = |v: [T; 4]| {
        [
            v[0] + half * (v[1] + v[2]),
            half * (v[1] - v[2]),
            half * (v[1] + v[2]) + v[3],
        ]
    };
    let mut out = vec![T::zero(); c_out * c * 9];
    for o in 0..c_out {
        for ci in 0..c {
            let at = |xi: usize| sums[(xi * c_out + o) * c + ci];
            // Gᵀ down each column, then along each row.
            let cols: [[T; 3]; 4] =
                std::array::from_fn(|sc| gt(std::array::from_fn(|r| at(4 * r + sc))));
            for a in 0..3 {
                let row = gt(std::array::from_fn(|sc| cols[sc][a]));
                out[(o * c + ci) * 9 + 3 * a..][..3].copy_from_slice(&row);
            }
        }
    }
    out
}

/// `M[ξ] = U[ξ] · V[ξ]` at the 16 tile positions, `[rows, C] · [C, P] → [rows, P]`, with
/// `u: [16, rows, C]`, `v: [16][C][P]` and `m: [16][rows][P]`.
fn products<T: Real>(m: &mut [T], u: &[T], v: &[T], (rows, c, p): (usize, usize, usize)) {
    for xi in 0..16 {
        product(
            &mut m[xi * rows * p..][..rows * p],
            View::new(&u[xi * rows * c..], rows, c, false),
            rows_of(v, xi, c, p, false),
        );
    }
}

/// `m = u · v` for one tile position (`m` dense, `[u.rows, v.cols]`): in `f32` on CPUs with
/// AVX2 and FMA and over at most [`avx::PRODUCT_MAX_K`] channels by [`avx::product`], which
/// reads `v` in place (the GEMM library packs it first, a large share of these short sums);
/// else by the GEMM library.
fn product<T: Real>(m: &mut [T], u: View<T>, v: View<T>) {
    assert!(!u.t && !v.t, "product: rows as stored");
    if u.cols <= avx::PRODUCT_MAX_K {
        if let (Some(u32), Some(v32)) = (avx::f32s(u.data), avx::f32s(v.data)) {
            let m32 = avx::f32s_mut(m).expect("f32 like its operands");
            let dims = (u.rows, u.cols, v.cols);
            avx::product(m32, v.cols, (u32, u.ld), (v32, v.ld), dims);
            return;
        }
    }
    gemm_slice(m, v.cols, T::zero(), u, v, T::one());
}

/// The bands of tile rows a block of `n` images is transformed in: all rows together when
/// several images share a block, else bands of about [`TILES`] tiles.
fn bands(g: &ConvGeom, n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (th, tw) = tiles_hw(g);
    let step = if n == 1 {
        (TILES / tw).clamp(1, th)
    } else {
        th
    };
    (0..th).step_by(step).map(move |i0| i0..(i0 + step).min(th))
}

/// Position ξ of `[16][C or C_out][P]` data as the `[rows, P]` matrix (or its transpose).
fn rows_of<T: Real>(data: &[T], xi: usize, rows: usize, p: usize, t: bool) -> View<'_, T> {
    View::new(&data[xi * rows * p..], rows, p, t)
}

impl<T: Real> Scratch<T> {
    /// Sizes the buffers for `band` of `n` images with `c_out` output channels and fills `V`
    /// with the input tiles: returns (tiles per image, tiles `P`).
    fn transform_input(
        &mut self,
        g: &ConvGeom,
        x: &[T],
        n: usize,
        c_out: usize,
        band: std::ops::Range<usize>,
    ) -> (usize, usize) {
        let (c, h, w) = (g.c, g.h, g.w);
        let tw = tiles_hw(g).1;
        let q = band.len() * tw;
        let p = n * q;
        self.v.resize(16 * c * p, T::zero());
        self.m.resize(16 * c_out * p, T::zero());
        self.rows.resize(8 * (q + tw), T::zero());
        self.out.resize(12 * q, T::zero());
        self.line.resize(4 * (band.len() + 1) * (tw + 1), T::zero());
        for i in 0..n {
            for ci in 0..c {
                let plane = &x[(i * c + ci) * h * w..][..h * w];
                let rows = (&mut self.rows[..], &mut self.line[..]);
                let at = (c * p, ci * p + i * q);
                input_tiles(plane, (h, w), band.clone(), tw, rows, &mut self.v, at);
            }
        }
        (q, p)
    }
}

/// The `q` values at `ξ·stride + at` for `ξ = 4r + s` (`r` = 0…3): one channel's rows of
/// `[16][C][P]` data for positions `(r, s)`, from its tile `at − c·P` on.
fn column_of<T>(v: &mut [T], (stride, at): (usize, usize), s: usize, q: usize) -> [&mut [T]; 4] {
    let mut rest = &mut v[s * stride + at..];
    std::array::from_fn(|r| {
        let (row, tail) =
            std::mem::take(&mut rest).split_at_mut(if r < 3 { 4 * stride } else { q });
        rest = tail;
        &mut row[..q]
    })
}

/// The first four rows of `len` values of `buf`, apart.
fn four_rows<T>(buf: &mut [T], len: usize) -> [&mut [T]; 4] {
    let mut rows = buf.chunks_exact_mut(len);
    std::array::from_fn(|_| rows.next().expect("four rows"))
}

/// `(a − c, b + c, c − b, b − d)`: one row (or column) of `Bᵀ d B` from the four inputs
/// `(a, b, c, d)` along it.
fn b_t<T: Real>([a, b, c, d]: [T; 4]) -> [T; 4] {
    [a - c, b + c, c - b, b - d]
}

/// `Bᵀ d B` for every tile of tile rows `band` of one channel's `plane` (`h × w`, padding 1),
/// into `v[ξ·stride + at + q]` (`v`: `[16][C][P]`, `at` the channel's first tile) for tile
/// `q = (ti − band.start)·tw + j`.
///
/// `d B` first, input row by input row, even and odd rows apart: then `Bᵀ (d B)` reads for
/// all tiles at once rows `k` and `k + 1` of each (tile row `ti` is input rows `2ti − 1 …
/// 2ti + 2`). `scratch`: `8·(q + tw)` values and `4·(q/tw + 1)·(tw + 1)`.
fn input_tiles<T: Real>(
    plane: &[T],
    (h, w): (usize, usize),
    band: std::ops::Range<usize>,
    tw: usize,
    (rows, line): (&mut [T], &mut [T]),
    v: &mut [T],
    at: (usize, usize),
) {
    let k_len = band.len() + 1;
    let len = k_len * tw;
    let q = band.len() * tw;
    // Every input row the band reads, split into padded columns 2j (input column 2j − 1)
    // and 2j + 1 (input column 2j), all before any is read back shifted by one (reading a
    // vector just stored at another offset stalls): tile j reads e[j], o[j], e[j+1], o[j+1].
    let line_of = |parity: usize, k: usize| (parity * k_len + k) * 2 * (tw + 1);
    // (Row by row down the plane, so the reads stream.)
    for k in 0..k_len {
        for parity in 0..2 {
            let (e, o) = line[line_of(parity, k)..][..2 * (tw + 1)].split_at_mut(tw + 1);
            let y = (2 * (band.start + k) + parity).wrapping_sub(1);
            if y >= h {
                e.fill(T::zero());
                o.fill(T::zero());
                continue;
            }
            let x = &plane[y * w..][..w];
            deinterleave(x, o, &mut e[1..]);
            // The padding (by hand: a fill of one or two values calls memset).
            e[0] = T::zero();
            o[tw] = T::zero();
            if w % 2 == 1 {
                e[tw] = T::zero();
                o[tw - 1] = x[w - 1];
            }
        }
    }
    // rows[(parity·4 + s)·len + k·tw + j]: `(d B)[s]` of tile column j on input row
    // 2(band.start + k) − 1 + parity.
    for parity in 0..2 {
        let mut d = four_rows(&mut rows[parity * 4 * len..], len);
        for k in 0..k_len {
            let outs = d.each_mut().map(|r| &mut r[k * tw..(k + 1) * tw]);
            let (e, o) = line[line_of(parity, k)..][..2 * (tw + 1)].split_at(tw + 1);
            lanes(tw, [e, o, &e[1..], &o[1..]], outs, b_t);
        }
    }
    let (even, odd) = rows.split_at(4 * len);
    for s in 0..4 {
        let (e, o) = (&even[s * len..][..len], &odd[s * len..][..len]);
        lanes(q, [e, o, &e[tw..], &o[tw..]], column_of(v, at, s, q), b_t);
    }
}

/// `(a, a + b, a − b, −b)`: one row (or column) of `A δ Aᵀ` from the two errors `(a, b)`
/// along it.
fn a_t<T: Real>([a, b]: [T; 2]) -> [T; 4] {
    [a, a + b, a - b, T::zero() - b]
}

/// `A δ Aᵀ` for every 2×2 tile of errors in tile rows `band` of one output channel's `plane`
/// (`h × w`; positions past the edge are zero), into `d[ξ·stride + at + q]` —
/// by rows first, even and odd rows apart, as in [`input_tiles`].
fn error_tiles<T: Real>(
    plane: &[T],
    (h, w): (usize, usize),
    band: std::ops::Range<usize>,
    tw: usize,
    (rows, line): (&mut [T], &mut [T]),
    d: &mut [T],
    at: (usize, usize),
) {
    let q = band.len() * tw;
    let (de, dd) = line.split_at_mut(tw + 1);
    for parity in 0..2 {
        let mut r = four_rows(&mut rows[parity * 4 * q..], q);
        for (k, ti) in band.clone().enumerate() {
            let outs = r.each_mut().map(|r| &mut r[k * tw..(k + 1) * tw]);
            let y = 2 * ti + parity;
            if y >= h {
                outs.into_iter().for_each(|o| o.fill(T::zero()));
                continue;
            }
            // Columns 2j and 2j + 1 of the row.
            let x = &plane[y * w..][..w];
            deinterleave(x, de, dd);
            if w % 2 == 1 {
                de[tw - 1] = x[w - 1];
                dd[tw - 1] = T::zero();
            }
            lanes(tw, [&de[..], &dd[..]], outs, a_t);
        }
    }
    let (even, odd) = rows.split_at(4 * q);
    for s in 0..4 {
        let (e, o) = (&even[s * q..][..q], &odd[s * q..][..q]);
        lanes(q, [e, o], column_of(d, at, s, q), a_t);
    }
}

/// `Aᵀ m A` for every tile of tile rows `band` of one output channel: `m[ξ·stride + at + q]` (`m`:
/// `[16][C_out][P]`) holds position ξ's product for tile `q`; output rows `2ti`, `2ti + 1` of `plane`
/// (`h × w`) are written where they exist. `y` is scratch of `12·q`.
///
/// Down the columns first (`Aᵀ m`, four rows of `m` in, two out, for each column `s`), then
/// along the rows: reading all sixteen rows of `m` in one pass kept their addresses on the
/// stack, reloaded for every eight tiles.
fn output_tiles<T: Real>(
    m: &[T],
    (stride, at): (usize, usize),
    band: std::ops::Range<usize>,
    tw: usize,
    plane: &mut [MaybeUninit<T>],
    (h, w): (usize, usize),
    y: &mut [T],
) {
    let q = band.len() * tw;
    let mr = |xi: usize| &m[xi * stride + at..][..q];
    // `(a, b, c, d) ↦ (a + b + c, b − c − d)`: one column (or row) of `Aᵀ m A` from four values.
    let a_t = |[a, b, c, d]: [T; 4]| [a + b + c, b - c - d];
    // t[4u + s] = (Aᵀ m)[u][s], then y[2u + v] = (Aᵀ m A)[u][v].
    let (t, y) = y.split_at_mut(8 * q);
    let (t0, t1) = t.split_at_mut(4 * q);
    let (t0, t1) = (four_rows(t0, q), four_rows(t1, q));
    for s in 0..4 {
        let ins = [mr(s), mr(4 + s), mr(8 + s), mr(12 + s)];
        lanes(q, ins, [&mut *t0[s], &mut *t1[s]], a_t);
    }
    let [y0, y1, y2, y3] = four_rows(y, q);
    let [t0, t1] = [t0.each_ref().map(|r| &**r), t1.each_ref().map(|r| &**r)];
    lanes(q, t0, [&mut *y0, &mut *y1], a_t);
    lanes(q, t1, [&mut *y2, &mut *y3], a_t);
    let ys = [&*y0, &*y1, &*y2, &*y3];
    for (k, ti) in band.enumerate() {
        for u in 0..2 {
            let row = 2 * ti + u;
            if row >= h {
                continue;
            }
            let line = &mut plane[row * w..][..w];
            let (ye, yo) = (&ys[2 * u][k * tw..][..tw], &ys[2 * u + 1][k * tw..][..tw]);
            for ((pair, &e), &o) in line.chunks_exact_mut(2).zip(ye).zip(yo) {
                pair[0].write(e);
                pair[1].write(o);
            }
            if w % 2 == 1 {
                line[w - 1].write(ye[tw - 1]);
            }
        }
    }
}

/// `even[i] = x[2i]`, `odd[i] = x[2i + 1]` for the `⌊len/2⌋` pairs of `x`, sixteen values at a
/// time through fixed-size arrays (a plain loop over pairs stayed scalar).
fn deinterleave<T: Real>(x: &[T], even: &mut [T], odd: &mut [T]) {
    const B: usize = 8;
    let pairs = x.len() / 2;
    let full = pairs / B * B;
    for (b, chunk) in x[..2 * full].chunks_exact(2 * B).enumerate() {
        let c: &[T; 2 * B] = chunk.try_into().expect("a block");
        let ev: [T; B] = std::array::from_fn(|i| c[2 * i]);
        let od: [T; B] = std::array::from_fn(|i| c[2 * i + 1]);
        even[b * B..][..B].copy_from_slice(&ev);
        odd[b * B..][..B].copy_from_slice(&od);
    }
    for i in full..pairs {
        even[i] = x[2 * i];
        odd[i] = x[2 * i + 1];
    }
}

/// `outs[·][j] = f(ins[·][j])` for `j < len`, eight at a time with fixed-size arrays: the
/// compiler then emits vector operations even for rows of 8–16 tiles, where a plain loop's
/// vectorised body (unrolled to 32) would never run.
#[inline(always)]
fn lanes<T: Real, const I: usize, const O: usize>(
    len: usize,
    ins: [&[T]; I],
    mut outs: [&mut [T]; O],
    f: impl Fn([T; I]) -> [T; O],
) {
    const L: usize = 8;
    let full = len / L * L;
    for j0 in (0..full).step_by(L) {
        let x: [[T; L]; I] = std::array::from_fn(|i| ins[i][j0..j0 + L].try_into().unwrap());
        let mut y = [[T::zero(); L]; O];
        for k in 0..L {
            let r = f(std::array::from_fn(|i| x[i][k]));
            for (q, v) in r.into_iter().enumerate() {
                y[q][k] = v;
            }
        }
        for (out, y) in outs.iter_mut().zip(&y) {
            out[j0..j0 + L].copy_from_slice(y);
        }
    }
    for j in full..len {
        let r = f(std::array::from_fn(|i| ins[i][j]));
        for (out, v) in outs.iter_mut().zip(r) {
            out[j] = v;
        }
    }
}

/// `s[o][c] += Σ_p a[o][p] · b[c][p]` (`s: [a.rows, b.rows]`): products of rows that are both
/// contiguous along the sum, as the weight gradient's are. Blocks of 4 × 2 rows keep eight
/// partial sums of eight lanes each in registers (the GEMM library's kernel for this layout
/// measured ≈ 3× slower on ResNet-20's 16 × 16 × 256 products); the lanes are added at the end.
/// In `f32` on CPUs with AVX2 and FMA the same blocks run as explicit vector code
/// ([`avx::dots_add`]: 8.5 → 53 GFLOPS on one core for 16 × 16 × 256).
fn dots_add<T: Real>(s: &mut [T], a: View<T>, b: View<T>) {
    let (m, n) = (a.rows, b.rows);
    assert_eq!(a.cols, b.cols, "dots_add: inner dimensions");
    assert_eq!(s.len(), m * n, "dots_add: output size");
    assert!(!a.t && !b.t, "dots_add: rows as stored");
    if let (Some(a32), Some(b32)) = (avx::f32s(a.data), avx::f32s(b.data)) {
        let s32 = avx::f32s_mut(s).expect("f32 like its operands");
        avx::dots_add(s32, (a32, a.ld, m), (b32, b.ld, n), a.cols);
        return;
    }
    for o0 in (0..m).step_by(4) {
        for c0 in (0..n).step_by(2) {
            match ((m - o0).min(4), (n - c0).min(2)) {
                (4, 2) => dots::<T, 4, 2>(s, n, a, b, o0, c0),
                (4, _) => dots::<T, 4, 1>(s, n, a, b, o0, c0),
                (r, 2) => (o0..o0 + r).for_each(|o| dots::<T, 1, 2>(s, n, a, b, o, c0)),
                (r, _) => (o0..o0 + r).for_each(|o| dots::<T, 1, 1>(s, n, a, b, o, c0)),
            }
        }
    }
}

/// One `R × C` block of [`dots_add`]: rows `o0..o0 + R` of `a` with rows `c0..c0 + C` of `b`.
#[inline(always)]
fn dots<T: Real, const R: usize, const C: usize>(
    s: &mut [T],
    ldc: usize,
    a: View<T>,
    b: View<T>,
    o0: usize,
    c0: usize,
) {
    const L: usize = 8;
    let k = a.cols;
    let ra: [&[T]; R] = std::array::from_fn(|r| &a.data[(o0 + r) * a.ld..][..k]);
    let rb: [&[T]; C] = std::array::from_fn(|c| &b.data[(c0 + c) * b.ld..][..k]);
    let mut acc = [[[T::zero(); L]; C]; R];
    let full = k / L * L;
    for p in (0..full).step_by(L) {
        let va: [[T; L]; R] = std::array::from_fn(|r| ra[r][p..p + L].try_into().unwrap());
        let vb: [[T; L]; C] = std::array::from_fn(|c| rb[c][p..p + L].try_into().unwrap());
        for r in 0..R {
            for c in 0..C {
                for l in 0..L {
                    acc[r][c][l] += va[r][l] * vb[c][l];
                }
            }
        }
    }
    for r in 0..R {
        for c in 0..C {
            let mut sum = T::zero();
            for v in acc[r][c] {
                sum += v;
            }
            for p in full..k {
                sum += ra[r][p] * rb[c][p];
            }
            s[(o0 + r) * ldc + c0 + c] += sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dots_add` equals the plain triple loop on every block shape, a ragged tail and rows
    /// farther apart than their length, in `f64` (the generic code) and `f32` (on this CPU the
    /// AVX2 kernel where it has one): integer values, so every sum is exact in both.
    #[test]
    fn dots_add_matches_the_triple_loop() {
        fn check<T: Real>() {
            let (m, n, k, ld) = (7, 5, 21, 24);
            let a: Vec<T> = (0..m * ld)
                .map(|i| T::of(((i * 7919) % 23) as f64 - 11.0))
                .collect();
            let b: Vec<T> = (0..n * ld)
                .map(|i| T::of(((i * 104729) % 19) as f64 - 9.0))
                .collect();
            let mut s = vec![T::one(); m * n];
            let view = |x, rows| View::new(x, rows, ld, false).columns(0, k);
            dots_add(&mut s, view(&a, m), view(&b, n));
            for o in 0..m {
                for c in 0..n {
                    let dot: f64 = (0..k).map(|p| (a[o * ld + p] * b[c * ld + p]).f64()).sum();
                    assert_eq!(s[o * n + c].f64(), 1.0 + dot, "({o}, {c})");
                }
            }
        }
        check::<f64>();
        check::<f32>();
    }

    /// `product` equals the plain triple loop for row counts that leave 0–3 rows over, column
    /// counts that end in every kind of block (24, 16, 8, masked), and strided rows, in `f64`
    /// and `f32` (where it runs, the AVX2 kernel): integer values, every sum exact.
    #[test]
    fn product_matches_the_triple_loop() {
        fn check<T: Real>(m: usize, k: usize, n: usize) {
            let (ldu, ldv) = (k + 2, n + 3);
            let u: Vec<T> = (0..m * ldu)
                .map(|i| T::of(((i * 7919) % 13) as f64 - 6.0))
                .collect();
            let v: Vec<T> = (0..k * ldv)
                .map(|i| T::of(((i * 104729) % 11) as f64 - 5.0))
                .collect();
            let mut c = vec![T::of(1e9); m * n];
            let uv = View::new(&u, m, ldu, false).columns(0, k);
            let vv = View::new(&v, k, ldv, false).columns(0, n);
            product(&mut c, uv, vv);
            for o in 0..m {
                for p in 0..n {
                    let want: f64 = (0..k)
                        .map(|j| (u[o * ldu + j] * v[j * ldv + p]).f64())
                        .sum();
                    assert_eq!(c[o * n + p].f64(), want, "{m}×{k}×{n} at ({o}, {p})");
                }
            }
        }
        for (m, k, n) in [
            (7, 5, 45),
            (4, 3, 8),
            (5, 2, 30),
            (6, 32, 19),
            (1, 1, 3),
            (9, 16, 256),
        ] {
            check::<f64>(m, k, n);
            check::<f32>(m, k, n);
        }
    }
}
