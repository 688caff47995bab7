//! Data-parallel training: the processes (ranks) a run is spread over and the one collective it
//! needs, an element-wise sum that every rank receives. The library knows no transport: the
//! `nowt` binary built with `--features mpi` supplies MPI's (`MPI_Allreduce`), a single process
//! uses [`Solo`], and [`ThreadGroup`] runs K ranks as threads of one process, which is how the
//! tests prove the semantics without MPI.
//!
//! What a K-rank step does (see [`crate::train::train_step_on`]): `--batch-size` stays the
//! global batch; rank `r` takes its contiguous share of exactly the samples a 1-rank run uses
//! at that step ([`share`]), with the same augmentation draws; each rank's loss is scaled to
//! the global batch (`n_r / N`) so that summing the ranks' gradients gives the 1-rank mean
//! gradient; the gradients of `W`, the biases and batch norm's parameters are summed before the
//! step. Everything else — `B` under every rule, the mirror's noise, redrawn magnitudes — is
//! computed identically on every rank from the shared seed and the shared `W`, and never sent.

use std::cell::Cell;
use std::sync::{Arc, Barrier, Mutex};

/// The ranks of a run and the sum they share.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces `buf` on every rank by the element-wise sum of every rank's `buf` (the same
    /// length on every rank), the same bits on every rank.
    fn sum(&self, buf: &mut [f64]);
    /// [`Collective::sum`] for `f32` (the gradients).
    fn sum_f32(&self, buf: &mut [f32]);
}

/// One process: rank 0 of 1; sums are the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _buf: &mut [f64]) {}
    fn sum_f32(&self, _buf: &mut [f32]) {}
}

/// The share of rank `rank` of `size` in a global batch of `n` samples: a contiguous range, the
/// first `n mod size` ranks one sample longer (every sample is in exactly one share).
pub fn share(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Whether `flag` holds on any rank (every rank receives the answer): decisions that end the
/// training loop, such as a stop one rank was asked for, are taken by all together.
pub fn any(world: &dyn Collective, flag: bool) -> bool {
    if world.size() == 1 {
        return flag;
    }
    let mut v = [f64::from(u8::from(flag))];
    world.sum(&mut v);
    v[0] > 0.0
}

/// The per-layer check at a checkpoint: every rank's `W` and `B` must be the same bits. Returns
/// the first layer (bottom to top) whose bits differ on some rank.
pub fn differing_layer(
    world: &dyn Collective,
    net: &crate::models::Network<f32>,
) -> Option<String> {
    use std::hash::{Hash, Hasher};
    if world.size() == 1 {
        return None;
    }
    let layers = net.weight_layers();
    // A 32-bit hash per layer is exact in f64 even summed over ranks: each rank compares the
    // sum with `size ×` its own, and the ranks then agree on any mismatch.
    let hashes: Vec<f64> = layers
        .iter()
        .map(|l| {
            let p = l.params();
            let mut h = std::hash::DefaultHasher::new();
            for v in p.w.data().iter().chain(p.feedback.data()) {
                v.to_bits().hash(&mut h);
            }
            (h.finish() >> 32) as f64
        })
        .collect();
    let mut sums = hashes.clone();
    world.sum(&mut sums);
    let mut mismatch: Vec<f64> = hashes
        .iter()
        .zip(&sums)
        .map(|(h, s)| f64::from(u8::from(*s != h * world.size() as f64)))
        .collect();
    world.sum(&mut mismatch);
    mismatch
        .iter()
        .position(|&m| m > 0.0)
        .map(|i| layers[i].params().name.clone())
}

thread_local! {
    /// The ranks batch norm sums its statistics over (`--sync-bn`), while [`with_synced_batch_norm`]
    /// runs on this thread.
    static BATCH_NORM: Cell<Option<&'static dyn Collective>> = const { Cell::new(None) };
}

/// Runs `f` with batch norm in training mode summing its batch statistics over `comm`'s ranks
/// (`--sync-bn`): every batch-norm layer normalises by the global batch's mean and variance, and
/// its backward uses the global sums, so K ranks compute what one rank computes on the whole
/// batch. Every rank must run the same forward and backward passes.
pub fn with_synced_batch_norm<R>(comm: &dyn Collective, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BATCH_NORM.with(|b| b.set(None));
        }
    }
    // SAFETY: the reference is only read on this thread while `f` runs (the guard clears it
    // when `f` returns or unwinds), and `comm` outlives `f`.
    let comm: &'static dyn Collective = unsafe { std::mem::transmute(comm) };
    BATCH_NORM.with(|b| b.set(Some(comm)));
    let _reset = Reset;
    f()
}

/// Sums `buf` over the ranks batch norm is synchronised across, if it is
/// ([`with_synced_batch_norm`]); `false` (and `buf` unchanged) if not.
pub(crate) fn batch_norm_sum(buf: &mut [f64]) -> bool {
    match BATCH_NORM.with(Cell::get) {
        Some(comm) => {
            comm.sum(buf);
            true
        }
        None => false,
    }
}

/// Whether batch norm on this thread sums its statistics over ranks.
pub(crate) fn batch_norm_synced() -> bool {
    BATCH_NORM.with(Cell::get).is_some()
}

/// K ranks as threads of one process (for tests): every rank posts its buffer, waits at a
/// barrier, and reads the sum, added in rank order.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    barrier: Barrier,
    posted: Mutex<Vec<Vec<f64>>>,
}

impl ThreadGroup {
    /// The `size` members of a new group, rank 0 first; hand one to each thread.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            posted: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum(&self, buf: &mut [f64]) {
        let s = &self.shared;
        s.posted.lock().expect("a rank panicked")[self.rank] = buf.to_vec();
        s.barrier.wait();
        {
            let posted = s.posted.lock().expect("a rank panicked");
            for (i, v) in buf.iter_mut().enumerate() {
                *v = posted.iter().map(|p| p[i]).fold(0.0, |a, b| a + b);
            }
        }
        // Nobody posts again before everyone has read.
        s.barrier.wait();
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        let mut wide: Vec<f64> = buf.iter().map(|&v| v as f64).collect();
        self.sum(&mut wide);
        for (b, w) in buf.iter_mut().zip(wide) {
            *b = w as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_in_order() {
        for n in [0, 1, 5, 128, 131] {
            for size in 1..=5 {
                let ranges: Vec<_> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[size - 1].end, n);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "n {n}, size {size}");
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }

    #[test]
    fn a_thread_group_sums_every_ranks_buffer_on_every_rank() {
        let got: Vec<Vec<f64>> = std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::new(3)
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for round in 0..3 {
                            let mut buf = vec![g.rank() as f64 + round as f64, 1.0];
                            g.sum(&mut buf);
                            out.extend(buf);
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for g in &got {
            assert_eq!(g, &[3.0, 3.0, 6.0, 3.0, 9.0, 3.0]);
        }
    }
}
