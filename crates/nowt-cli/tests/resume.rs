//! Runs that survive: SIGKILL and Ctrl-C at random moments, resumed, end exactly like a run
//! that was never interrupted; broken checkpoints and run directories give clear errors.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{final_state, metrics, nowt, nowt_cmd, stderr, untimed};
use serde_json::Value;

/// Long enough (a few seconds) to be interrupted at many moments; the weight mirror exercises
/// every piece of state (momentum, mirror noise generator).
const TRAIN: &[&str] = &[
    "train",
    "--rule",
    "wm",
    "--hidden",
    "384,384",
    "--lr",
    "0.01",
    "--wm-warmup-batches",
    "100",
    "--epochs",
    "12",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "40",
    "--seed",
    "5",
    "--threads",
    "2",
    "-q",
];

fn untimed_metrics(dir: &Path) -> Vec<Value> {
    untimed(metrics(dir))
}

/// `probes.jsonl`'s records without their seconds (none without `--probe-every`).
fn untimed_probes(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("probes.jsonl")).unwrap_or_default();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    untimed(records)
}

fn run_dir_arg(d: &Path) -> &str {
    d.to_str().unwrap()
}

/// Starts a fresh run (or resumes one), waits until it has written a checkpoint newer than
/// any before, then lets it run `extra` longer and stops it with `signal` (wherever it is:
/// mid-step, mid-evaluation, mid-write). Returns whether the run finished first.
fn interrupt(run: &Path, train: &[&str], extra: Duration, signal: &str) -> bool {
    let newest = || {
        nowt::checkpoint::list(&run.join("checkpoints"))
            .into_iter()
            .next()
    };
    let before = newest();
    let mut cmd = if before.is_some() {
        nowt_cmd(&["train", "--resume", run_dir_arg(run), "-q"])
    } else {
        let mut args = train.to_vec();
        args.extend(["--out", run_dir_arg(run)]);
        nowt_cmd(&args)
    };
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run failed before the {signal}");
            return true;
        }
        if newest() != before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no checkpoint within a minute"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(extra);
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if signal == "-INT" {
        // Ctrl-C: a checkpoint and a clean exit with 130 (or it had just finished).
        assert!(
            out.status.code() == Some(130) || out.status.success(),
            "{:?}: {err}",
            out.status
        );
    }
    out.status.success()
}

/// Runs `train` uninterrupted, and again with SIGKILL and Ctrl-C at pseudo-random moments
/// each followed by `--resume`; both must end with identical metrics and tensors.
fn interrupted_run_matches_uninterrupted(train: &[&str], min_interruptions: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let mut args = train.to_vec();
    args.extend(["--out", run_dir_arg(&reference)]);
    let o = nowt(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let run = tmp.path().join("interrupted");
    // Deterministic pseudo-random extra delays of 0–150 ms after each new checkpoint.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut interruptions = 0;
    let mut finished = false;
    for i in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let signal = if i == 2 { "-INT" } else { "-KILL" };
        if interrupt(&run, train, Duration::from_millis(x % 150), signal) {
            finished = true;
            break;
        }
        interruptions += 1;
    }
    assert!(
        interruptions >= min_interruptions,
        "only {interruptions} interruptions before the run finished"
    );
    if !finished {
        let o = nowt(&["train", "--resume", run_dir_arg(&run), "-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(untimed_metrics(&run), untimed_metrics(&reference));
    assert_eq!(untimed_probes(&run), untimed_probes(&reference));
    assert_eq!(final_state(&run), final_state(&reference));
    // The total counts every process's seconds, not the last one's only.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let epochs: f64 = metrics(&run)
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap())
        .sum();
    let total = summary["total_seconds"].as_f64().unwrap();
    assert!(
        total >= epochs,
        "total_seconds {total} < the epochs' {epochs}"
    );
}

#[test]
fn sigkill_and_ctrl_c_at_random_moments_then_resume_match_an_uninterrupted_run() {
    interrupted_run_matches_uninterrupted(TRAIN, 4);
}

/// Ctrl-C in the mirror's warm-up stops the run within the noise batch it is in, with exit
/// code 130 and a message that there is no checkpoint to resume (a warm-up of 10⁹ batches that
/// ran on would not end within the minute allowed), and leaves no checkpoint behind.
#[test]
fn ctrl_c_in_a_long_warm_up_stops_the_run_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args: Vec<&str> = TRAIN.iter().copied().filter(|&a| a != "-q").collect();
    let at = args
        .iter()
        .position(|&a| a == "--wm-warmup-batches")
        .unwrap();
    args[at + 1] = "1000000000";
    args.extend(["--out", run_dir_arg(&run)]);
    let mut child = nowt_cmd(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !run.join("config.toml").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no run directory"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let stopped = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if stopped.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run went on warming up a minute after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("warming up B: 1000000000 noise batches"),
        "{err}"
    );
    assert!(
        err.contains("interrupted before the run's first checkpoint"),
        "{err}"
    );
    assert!(nowt::checkpoint::list(&run.join("checkpoints")).is_empty());
}

/// [`TRAIN`] under another rule (without the mirror's warm-up flag), with `extra` flags.
fn train_under<'a>(rule: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut train: Vec<&str> = TRAIN.to_vec();
    let at = train.iter().position(|&a| a == "wm").unwrap();
    train[at] = rule;
    let warmup = train
        .iter()
        .position(|&a| a == "--wm-warmup-batches")
        .unwrap();
    train.drain(warmup..warmup + 2);
    train.extend(extra);
    train
}

/// The same under AdamW and Kolen-Pollack: both moments of `W`, of `B` and of the biases, and
/// Adam's step count, resume exactly.
#[test]
fn an_adamw_kolen_pollack_run_resumes_exactly() {
    let mut train = train_under("kp", &["--optimizer", "adamw"]);
    let lr = train.iter().position(|&a| a == "--lr").unwrap();
    train[lr + 1] = "0.001";
    interrupted_run_matches_uninterrupted(&train, 4);
}

/// The same under product feedback alignment: its `R` (which has not `W`'s shape), its fixed
/// `P` and `R`'s momentum resume exactly.
#[test]
fn a_product_feedback_alignment_run_resumes_exactly() {
    interrupted_run_matches_uninterrupted(&train_under("pfa", &["--pfa-expand", "3"]), 4);
}

/// The same with noise pre-training: a run resumed from a checkpoint does not pre-train again
/// (the checkpoint says the phase is done; pre-training twice would end elsewhere).
#[test]
fn a_run_with_noise_pretraining_resumes_exactly() {
    let train = train_under("fa", &["--pretrain-noise-steps", "40"]);
    interrupted_run_matches_uninterrupted(&train, 4);
}

/// The same with the layers measured every 7 steps (`--probe-every`): the records after the
/// checkpoint a run resumes from are dropped and made again, so `probes.jsonl` is the
/// unbroken run's, record for record.
#[test]
fn a_run_with_probes_resumes_exactly() {
    let mut train = TRAIN.to_vec();
    train.extend(["--probe-every", "7"]);
    interrupted_run_matches_uninterrupted(&train, 4);
}

/// The same for a ResNet: convolutions, batch norm (γ, β, running statistics), Kolen-Pollack's
/// momentum for B, and per-step augmentation all resume exactly.
#[test]
fn a_resnet_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    common::fake_image_folder(&data, &["a", "b", "c"], 8, 8);
    let mut train = common::resnet_on_images(&data, "kp");
    train.extend([
        "--augment",
        "--epochs",
        "6",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
        "--seed",
        "3",
        "--threads",
        "2",
        "-q",
    ]);
    interrupted_run_matches_uninterrupted(&train, 2);
}

/// A run resumed on another number of threads (`--resume … --threads 1`, begun on 2) ends
/// exactly as the unbroken run on 2, since no value depends on the thread count; its
/// config.toml names the new count and provenance.json records the change. A checkpoint on
/// other threads than config.toml's is the same run's.
#[test]
fn a_run_resumed_on_other_threads_ends_as_the_unbroken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let with_epochs = |n: &'static str| {
        let mut train = TRAIN.to_vec();
        let at = train.iter().position(|&a| a == "--epochs").unwrap();
        train[at + 1] = n;
        train.extend(["--schedule", "constant"]);
        train
    };
    let reference = tmp.path().join("reference");
    let mut args = with_epochs("4");
    args.extend(["--out", run_dir_arg(&reference)]);
    assert!(nowt(&args).status.success());
    let run = tmp.path().join("run");
    let mut args = with_epochs("2");
    args.extend(["--out", run_dir_arg(&run)]);
    assert!(nowt(&args).status.success());
    let o = nowt(&[
        "train",
        "--resume",
        run_dir_arg(&run),
        "--epochs",
        "4",
        "--threads",
        "1",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(untimed_metrics(&run), untimed_metrics(&reference));
    assert_eq!(final_state(&run), final_state(&reference));
    let config = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("threads = 1"), "{config}");
    let prov: Value =
        serde_json::from_str(&fs::read_to_string(run.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(
        prov["resumed"][0]["changes"]["threads"],
        serde_json::json!([2, 1])
    );

    // Killed before its first checkpoint on the new count, such a resume leaves config.toml
    // naming 1 thread and the newest checkpoint 2: still the same run, resumed as it.
    let killed = tmp.path().join("killed");
    let mut args = with_epochs("2");
    args.extend(["--out", run_dir_arg(&killed)]);
    assert!(nowt(&args).status.success());
    let config = fs::read_to_string(killed.join("config.toml")).unwrap();
    let one = config.replace("threads = 2", "threads = 1");
    assert_ne!(one, config);
    fs::write(killed.join("config.toml"), one).unwrap();
    let o = nowt(&[
        "train",
        "--resume",
        run_dir_arg(&killed),
        "--epochs",
        "4",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(untimed_metrics(&killed), untimed_metrics(&reference));
}

/// A ResNet under the weight mirror (convolutions by Winograd and im2col, batch norm, noise,
/// augmentation) trained on 1 thread and on 3 gives the same metrics and tensors: no reduction
/// is split by the thread count, which is what lets a run resume on another one.
#[test]
fn a_resnet_on_one_thread_or_three_is_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    common::fake_image_folder(&data, &["a", "b", "c"], 8, 16);
    let run = |threads: &str| {
        let dir = tmp.path().join(format!("t{threads}"));
        let mut args = common::resnet_on_images(&data, "wm");
        args.extend([
            "--wm-warmup-batches",
            "2",
            "--augment",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--threads",
            threads,
            "--out",
            run_dir_arg(&dir),
            "-q",
        ]);
        let o = nowt(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    };
    let (one, three) = (run("1"), run("3"));
    assert_eq!(untimed_metrics(&one), untimed_metrics(&three));
    assert_eq!(final_state(&one), final_state(&three));
}

#[test]
fn resume_refuses_what_it_cannot_use() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&["train", "--epochs", "2", "--out", run_dir_arg(&run), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Other training flags with --resume.
    let o = nowt(&["train", "--resume", run_dir_arg(&run), "--lr", "0.1"]);
    assert!(
        !o.status.success() && stderr(&o).contains("drop the other training flags"),
        "{}",
        stderr(&o)
    );

    // No checkpoints at all.
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let o = nowt(&["train", "--resume", run_dir_arg(&empty)]);
    assert!(
        !o.status.success() && stderr(&o).contains("no valid checkpoint"),
        "{}",
        stderr(&o)
    );

    // A corrupt newest checkpoint is skipped with a warning; the one before it is used.
    let ckpts: Vec<PathBuf> = nowt::checkpoint::list(&run.join("checkpoints"));
    assert_eq!(ckpts.len(), 2);
    let good_before = fs::read(&ckpts[1]).unwrap();
    let newest = fs::read(&ckpts[0]).unwrap();
    fs::write(&ckpts[0], &newest[..newest.len() / 2]).unwrap();
    let o = nowt(&["train", "--resume", run_dir_arg(&run), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipping checkpoint") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(&ckpts[1]).unwrap(), good_before);

    // A checkpoint of another run (different model) in this run's directory.
    let other = tmp.path().join("other");
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "--hidden",
        "32",
        "--out",
        run_dir_arg(&other),
        "-q",
    ]);
    assert!(o.status.success());
    let foreign = nowt::checkpoint::list(&other.join("checkpoints")).remove(0);
    for c in nowt::checkpoint::list(&run.join("checkpoints")) {
        fs::remove_file(c).unwrap();
    }
    fs::copy(
        &foreign,
        run.join("checkpoints").join(foreign.file_name().unwrap()),
    )
    .unwrap();
    let o = nowt(&["train", "--resume", run_dir_arg(&run)]);
    assert!(
        !o.status.success() && stderr(&o).contains("a checkpoint of another run"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn eval_reports_a_checkpoint_and_rejects_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&["train", "--epochs", "3", "--out", run_dir_arg(&run), "-q"]);
    assert!(o.status.success());
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let ckpt = nowt::checkpoint::list(&run.join("checkpoints")).remove(0);
    let o = nowt(&["eval", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = summary["last"]["test"]["top1_err"].as_f64().unwrap();
    assert!(
        out.contains(&format!("top-1 err {:.2}%", 100.0 * err)),
        "{out}"
    );

    let bad = tmp.path().join("bad.safetensors");
    fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let o = nowt(&["eval", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bad.safetensors") && !stderr(&o).contains("panicked"),
        "{}",
        stderr(&o)
    );
    let o = nowt(&["eval", "/nonexistent.safetensors"]);
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent.safetensors"));
    // A checkpoint evaluated on a dataset of another shape.
    let o = nowt(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent"));
}

#[test]
fn an_unwritable_run_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let o = nowt(&["train", "--out", file.join("run").to_str().unwrap(), "-q"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot create run directory") && stderr(&o).contains("a-file/run"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn divergence_names_where_non_finite_values_began_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--lr",
        "1e30",
        "--momentum",
        "0",
        "--checkpoint-every",
        "1",
        "--out",
        run_dir_arg(&run),
        "-q",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("non-finite loss at epoch 1, step"), "{err}");
    assert!(
        err.contains("non-finite values first appeared in the") && err.contains("fc"),
        "{err}"
    );
    assert!(err.contains("last good checkpoint is kept"), "{err}");
    assert!(
        !run.join("summary.json").exists(),
        "a diverged run must not look complete"
    );
    // Every checkpoint that was written holds finite numbers.
    for c in nowt::checkpoint::list(&run.join("checkpoints")) {
        let (_, st, _, _) = nowt::checkpoint::load(&c).unwrap();
        assert!(
            st.net
                .weight_layers()
                .iter()
                .all(|l| l.params().w.all_finite()),
            "{}",
            c.display()
        );
    }
}
