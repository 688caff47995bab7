//! # nowt — deep learning without weight transport
//!
//! A library implementing Akrout et al., *Deep Learning without Weight Transport* (NeurIPS 2019):
//! backprop, feedback alignment, sign symmetry, the weight mirror and Kolen-Pollack, all on one
//! seam. Every weight layer computes its weight gradient the same way under every rule; a
//! [`rules::Rule`] only chooses the matrix `M` that carries the error backwards,
//! `δ_in = δ_out · M`, and how the feedback weights `B` (stored with `W`'s shape) change.
//!
//! The library never parses arguments and never prints: the front ends (the `nowt` binary, the
//! Python module) do that. What a run is on disk — its directory, records, checkpoints and
//! resume — is [`run`], which every front end calls.

pub mod check;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod dist;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod models;
pub mod noise;
pub mod optim;
pub mod params;
pub mod rules;
pub mod run;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use tensor::{Real, Tensor};

/// The random generator used everywhere: ChaCha8, whose output is fixed for a given seed
/// across platforms and crate versions, so runs are reproducible.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator for one independent purpose (`stream`) of a run with `seed`: initial weights,
/// initial feedback weights, shuffling and mirror noise each get their own stream, so that for
/// example the weights `W₀` are the same under every rule.
pub fn rng(seed: u64, stream: u64) -> Rng {
    use rand::SeedableRng;
    let mut r = Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}
