//! The time of one `MPI_Allreduce` (sum) of an `f32` buffer the size of a model's gradients,
//! the collective every data-parallel step makes once (docs/distributed.md):
//!
//! ```sh
//! cargo build --release --features mpi --example allreduce
//! mpirun -np 2 target/release/examples/allreduce
//! ```
//!
//! Rank 0 prints, per model, the median of 15 timed calls (after 3 untimed), and the bus
//! bandwidth `2(K−1)/K · bytes / time` (what a ring all-reduce moves per rank).

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;

fn main() {
    let universe = mpi::initialize().expect("MPI initialises once");
    let world = universe.world();
    let k = world.size() as f64;
    // Trained parameters (W and biases; batch norm's γ, β and the running statistics nowt
    // also sums are < 1 % of these): the MLP of the MNIST table, and the standard counts.
    let models = [
        ("MLP 784-500-10", 397_510usize),
        ("ResNet-20", 272_474),
        ("ResNet-18", 11_689_512),
        ("ResNet-50", 25_557_032),
    ];
    if world.rank() == 0 {
        println!("{} ranks", world.size());
        println!("| model | parameters | MB | all-reduce ms (median of 15) | bus GB/s |");
        println!("|---|---|---|---|---|");
    }
    for (name, n) in models {
        let send = vec![1.0f32; n];
        let mut recv = vec![0.0f32; n];
        for _ in 0..3 {
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        }
        let mut ms: Vec<f64> = (0..15)
            .map(|_| {
                world.barrier();
                let t = Instant::now();
                world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        let bytes = (n * 4) as f64;
        if world.rank() == 0 {
            println!(
                "| {name} | {n} | {:.1} | {median:.2} | {:.2} |",
                bytes / 1e6,
                2.0 * (k - 1.0) / k * bytes / (median / 1e3) / 1e9
            );
        }
    }
}
