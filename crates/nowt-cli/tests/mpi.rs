//! `mpirun -np 2 nowt train …` against one process, end to end over Open MPI. Needs the binary
//! built with `--features mpi` and `mpirun` on the PATH (Debian: libopenmpi-dev openmpi-bin
//! libclang-dev); CI runs `cargo test --release -p nowt-cli --features mpi --test mpi`.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{metrics, nowt, stderr};

/// `mpirun -np <ranks> nowt <args>`, allowed to run as root (CI's containers do), not started.
fn mpirun_command(ranks: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", &ranks.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(env!("CARGO_BIN_EXE_nowt"))
        .args(args);
    c
}

/// `mpirun -np <ranks> nowt <args>`, run to the end.
fn mpirun(ranks: usize, args: &[&str]) -> Output {
    mpirun_command(ranks, args).output().expect("run mpirun")
}

/// `nowt <args> --out DIR` as one process (into `dir/one`) and on 2 ranks (into `dir/two`),
/// each asserted to succeed: the two run directories.
fn one_process_and_two_ranks(dir: &Path, args: &[&str], what: &str) -> (PathBuf, PathBuf) {
    let (one, two) = (dir.join("one"), dir.join("two"));
    let o = nowt(&[args, &["--out", one.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{what}, 1 rank: {}", stderr(&o));
    let o = mpirun(2, &[args, &["--out", two.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{what}, 2 ranks: {}", stderr(&o));
    (one, two)
}

/// Every weight layer's `W` then `B` in the run's newest checkpoint.
fn final_weights(dir: &Path) -> Vec<f32> {
    let newest = nowt::checkpoint::list(&dir.join("checkpoints"))
        .into_iter()
        .next()
        .expect("a checkpoint");
    let (_, state, _, _) = nowt::checkpoint::load(&newest).unwrap();
    state
        .net
        .weight_layers()
        .iter()
        .flat_map(|l| {
            let p = l.params();
            p.w.data().iter().chain(p.feedback.data()).copied()
        })
        .collect()
}

/// `‖a − b‖ / ‖b‖`.
fn relative_gap(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    diff / b.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

/// The paper's five rules on the digits MLP, 3 epochs, on 2 ranks and on one: the same test
/// error every epoch (to 1 sample in 100) and final `W`, `B` within 1e-4 of each other
/// (relative; the ranks' gradients are summed in another order). The ranks' own `W` and `B`
/// are compared bit for bit at every checkpoint by the run itself, which stops if they differ.
#[test]
fn two_ranks_train_as_one_process() {
    for rule in ["bp", "fa", "ss", "wm", "kp"] {
        let tmp = tempfile::tempdir().unwrap();
        let args = [
            "train",
            "--rule",
            rule,
            "--epochs",
            "3",
            "--threads",
            "1",
            "-q",
        ];
        let (one, two) = one_process_and_two_ranks(tmp.path(), &args, rule);
        let (m1, m2) = (metrics(&one), metrics(&two));
        assert_eq!(m1.len(), 3, "{rule}");
        assert_eq!(
            m2.len(),
            3,
            "{rule}: rank 0 alone writes one record per epoch"
        );
        for (a, b) in m1.iter().zip(&m2) {
            let err = |m: &serde_json::Value| m["test"]["top1_err"].as_f64().unwrap();
            assert!(
                (err(a) - err(b)).abs() <= 0.01,
                "{rule}: test error {} on 1 rank, {} on 2",
                err(a),
                err(b)
            );
        }
        let gap = relative_gap(&final_weights(&two), &final_weights(&one));
        assert!(gap < 1e-4, "{rule}: final weights off by {gap:.2e}");
    }
}

/// Several ranks need one run directory named on the command line.
#[test]
fn two_ranks_without_out_are_refused() {
    let o = mpirun(2, &["train", "--epochs", "1", "-q"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("give --out DIR"), "{}", stderr(&o));
}

/// A ResNet-20 with `--sync-bn` (batch norm's statistics summed over the ranks) on 2 ranks
/// against one: final weights within 1e-4 after 5 steps of 128 (digits, 640 training samples;
/// measured 4.1e-6; in the library's test each rank's own statistics leave 7e-3 after 5 steps).
#[test]
fn two_ranks_with_synced_batch_norm_train_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--model",
        "resnet20",
        "--sync-bn",
        "--train-limit",
        "640",
        "--epochs",
        "1",
        "--threads",
        "1",
        "-q",
    ];
    let (one, two) = one_process_and_two_ranks(tmp.path(), &args, "resnet20 --sync-bn");
    let gap = relative_gap(&final_weights(&two), &final_weights(&one));
    assert!(gap < 1e-4, "final weights off by {gap:.2e}");
}

/// A described network (a convolution with batch norm, a residual block without it, max
/// pooling) under the weight mirror on 2 ranks against one, as the built-in models: final
/// weights within 1e-4 after 5 steps of 128 (digits, 640 training samples).
#[test]
fn two_ranks_train_a_described_network_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("net.toml");
    std::fs::write(
        &file,
        "name = \"small\"\n\
         [[layers]]\nkind = \"conv\"\nout = 4\nkernel = 3\npadding = 1\n\
         [[layers]]\nkind = \"batch_norm\"\nrelu = true\n\
         [[layers]]\nkind = \"residual\"\n\
         [[layers.body]]\nkind = \"conv\"\nout = 4\nkernel = 3\npadding = 1\n\
         [[layers.body]]\nkind = \"relu\"\n\
         [[layers]]\nkind = \"max_pool\"\nkernel = 2\n\
         [[layers]]\nkind = \"flatten\"\n[[layers]]\nkind = \"linear\"\n",
    )
    .unwrap();
    let args = [
        "train",
        "--model",
        file.to_str().unwrap(),
        "--rule",
        "wm",
        "--sync-bn",
        "--train-limit",
        "640",
        "--epochs",
        "1",
        "--threads",
        "1",
        "-q",
    ];
    let (one, two) = one_process_and_two_ranks(tmp.path(), &args, "described");
    let gap = relative_gap(&final_weights(&two), &final_weights(&one));
    assert!(gap < 1e-4, "final weights off by {gap:.2e}");
}

/// `nowt compare` on 2 ranks: rank 0 writes the comparison, and its runs end with one
/// process's test errors (to 1 sample in 100).
#[test]
fn two_ranks_compare_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "compare",
        "--rules",
        "bp,fa",
        "--seeds",
        "0",
        "--epochs",
        "2",
        "--threads",
        "1",
        "-q",
    ];
    let (one, two) = one_process_and_two_ranks(tmp.path(), &args, "compare");
    assert!(two.join("report.md").exists());
    for run in ["bp-s0", "fa-s0"] {
        let err = |d: &Path| {
            metrics(&d.join(run))[1]["test"]["top1_err"]
                .as_f64()
                .unwrap()
        };
        assert!((err(&one) - err(&two)).abs() <= 0.01, "{run}");
    }
}

/// One rank killed (SIGKILL) mid-run ends the job without a hang; `--resume` on 2 ranks then
/// finishes it with exactly the weights of an uninterrupted 2-rank run.
#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, broken) = (tmp.path().join("whole"), tmp.path().join("broken"));
    let common = [
        "train",
        "--rule",
        "wm",
        "--epochs",
        "150",
        "--threads",
        "1",
        "--checkpoint-every",
        "20",
        "-q",
        "--out",
    ];
    let o = mpirun(2, &[&common[..], &[whole.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut job = mpirun_command(2, &common)
        .arg(&broken)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once a few checkpoints are written, kill one rank.
    let ckpts = broken.join("checkpoints");
    let start = std::time::Instant::now();
    while nowt::checkpoint::list(&ckpts).len() < 2 {
        assert!(start.elapsed().as_secs() < 60, "no checkpoint in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ranks = Command::new("pgrep")
        .args(["-P", &job.id().to_string()])
        .output()
        .unwrap();
    let victim = String::from_utf8_lossy(&ranks.stdout)
        .lines()
        .last()
        .expect("a rank process")
        .to_string();
    Command::new("kill").args(["-9", &victim]).status().unwrap();
    let killed = std::time::Instant::now();
    let status = job.wait().unwrap();
    assert!(!status.success(), "the job must fail when a rank dies");
    assert!(
        killed.elapsed().as_secs() < 20,
        "the job took {:?} to end",
        killed.elapsed()
    );
    assert!(
        !broken.join("summary.json").exists(),
        "killed before the end"
    );
    let o = mpirun(2, &["train", "--resume", broken.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "resume: {}", stderr(&o));
    assert_eq!(final_weights(&whole), final_weights(&broken));
}

/// `nowt bench` on 2 ranks times the global batch's step and prints once, from rank 0.
#[test]
fn two_ranks_bench_prints_one_line() {
    let o = mpirun(
        2,
        &["bench", "--steps", "3", "--warmup", "1", "--threads", "1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("NOWT ")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("batch=128") && lines[0].ends_with("ranks=2"),
        "{out}"
    );
}
