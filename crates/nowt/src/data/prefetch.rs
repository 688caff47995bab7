//! Batches made on a background thread, a few steps ahead of the step that needs them, with
//! the time the consumer spent waiting for them.

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;
use std::time::{Duration, Instant};

/// Batches made ahead of use: at most this many wait in the queue.
pub const DEPTH: usize = 3;

/// The consuming end: batches in step order, and how long [`Prefetch::recv`] has waited.
pub struct Prefetch<B> {
    rx: Receiver<B>,
    /// Time spent blocked waiting for a batch (the data-wait of DESIGN.md's metrics).
    pub waited: Duration,
}

impl<B: Send> Prefetch<B> {
    /// Starts a thread in `scope` that calls `make(step)` for every step of `steps` in order.
    /// It stops early when the `Prefetch` is dropped.
    pub fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        steps: Range<usize>,
        make: impl Fn(usize) -> B + Send + 'scope,
    ) -> Self
    where
        B: 'scope,
    {
        let (tx, rx) = sync_channel(DEPTH);
        scope.spawn(move || {
            for step in steps {
                if tx.send(make(step)).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            waited: Duration::ZERO,
        }
    }

    /// The next batch, or `None` once every step's batch was taken (or the maker panicked).
    pub fn recv(&mut self) -> Option<B> {
        let t = Instant::now();
        let b = self.rx.recv().ok();
        self.waited += t.elapsed();
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_in_order_and_a_dropped_consumer_stops_the_maker() {
        std::thread::scope(|s| {
            let mut p = Prefetch::spawn(s, 3..7, |step| step * 10);
            let got: Vec<usize> = std::iter::from_fn(|| p.recv()).collect();
            assert_eq!(got, vec![30, 40, 50, 60]);
            // Dropping early must not hang the scope.
            let mut q = Prefetch::spawn(s, 0..1_000_000, |step| step);
            assert_eq!(q.recv(), Some(0));
        });
    }
}
