//! The ranks this process trains with ([`nowt::dist`]): one ([`Solo`]) in the default build;
//! with `--features mpi`, MPI's world under `mpirun -np K nowt …` (rsmpi over Open MPI), whose
//! element-wise sum is `MPI_Allreduce`. Rank 0 alone writes files and prints; an error on any
//! rank ends the whole job (`MPI_Abort`) with a message naming the rank.

use std::sync::OnceLock;

use nowt::dist::{Collective, Solo};

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Starts MPI where built with it (once, before any other thread), else a single rank.
pub fn init() {
    #[cfg(feature = "mpi")]
    let world: Box<dyn Collective> = Box::new(mpi_world::MpiWorld::init());
    #[cfg(not(feature = "mpi"))]
    let world: Box<dyn Collective> = Box::new(Solo);
    let _ = WORLD.set(world);
}

/// The world [`init`] started (one rank if it was not called).
pub fn get() -> &'static dyn Collective {
    WORLD.get_or_init(|| Box::new(Solo)).as_ref()
}

/// Ends MPI (`MPI_Finalize`) before the process exits; nothing without it.
pub fn finish() {
    #[cfg(feature = "mpi")]
    mpi_world::finalize();
}

/// Refuses what this build cannot do: `sync_bn` (batch-norm statistics over the ranks) without
/// MPI built in, where it would silently do nothing.
pub fn check_build(cfg: &nowt::config::TrainConfig) -> anyhow::Result<()> {
    if cfg.sync_bn && !cfg!(feature = "mpi") {
        anyhow::bail!(
            "--sync-bn needs several ranks, and this nowt is built without MPI (build it with \
             cargo build --release --features mpi and start it under mpirun)"
        );
    }
    Ok(())
}

/// Ranks a launcher asked for (Open MPI's `OMPI_COMM_WORLD_SIZE`, MPICH's and Slurm's
/// `PMI_SIZE`), if any.
fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Refuses to run as one of several ranks in a build without MPI: each process would train
/// alone and all would write the same run directory.
pub fn refuse_ranks_without_mpi() -> anyhow::Result<()> {
    match launched_ranks() {
        Some(k) if k > 1 && !cfg!(feature = "mpi") => anyhow::bail!(
            "started as one of {k} ranks, but this nowt is built without MPI: every rank would \
             train alone; build it with cargo build --release --features mpi"
        ),
        _ => Ok(()),
    }
}

/// Whether this process writes files and prints: rank 0.
pub fn leads() -> bool {
    get().rank() == 0
}

/// Ends the whole job after an error on this rank, so no rank waits forever in a collective
/// for it: with more than one rank, prints the error with the rank and aborts every rank.
pub fn fail_all(message: &str) {
    let w = get();
    if w.size() > 1 {
        errln!("nowt: rank {} of {}: {message}", w.rank(), w.size());
        #[cfg(feature = "mpi")]
        mpi_world::abort(1);
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use mpi::Threading;

    use nowt::dist::Collective;

    /// MPI's world. The universe lives as long as the process (in a static, never dropped);
    /// [`finalize`] ends MPI.
    pub struct MpiWorld {
        world: SimpleCommunicator,
        rank: usize,
        size: usize,
        _universe: Universe,
    }

    // SAFETY: MPI is initialised with `MPI_THREAD_SERIALIZED`, and nowt calls it from one
    // thread at a time (the thread running the training loop; the kernels' parallel work never
    // calls it).
    unsafe impl Send for MpiWorld {}
    unsafe impl Sync for MpiWorld {}

    impl MpiWorld {
        pub fn init() -> Self {
            let (universe, _) = mpi::initialize_with_threading(Threading::Serialized)
                .expect("MPI is initialised once");
            let world = universe.world();
            Self {
                rank: world.rank() as usize,
                size: world.size() as usize,
                world,
                _universe: universe,
            }
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn sum(&self, buf: &mut [f64]) {
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        fn sum_f32(&self, buf: &mut [f32]) {
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
    }

    /// `MPI_Finalize`, once, at the end of `main` (the universe lives in a static and is never
    /// dropped, so it does not finalise again).
    pub fn finalize() {
        // SAFETY: called once, after the last collective, from the main thread.
        unsafe {
            mpi::ffi::MPI_Finalize();
        }
    }

    /// `MPI_Abort` on the world: every rank ends.
    pub fn abort(code: i32) {
        // SAFETY: MPI is initialised (the world exists once `init` ran) and `MPI_Abort` on
        // `MPI_COMM_WORLD` does not return.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
    }
}
