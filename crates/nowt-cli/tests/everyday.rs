//! The everyday path, each test named after what it checks: runs that blow up stop with a
//! message, logs reach files and schedulers, SIGTERM checkpoints, silent no-ops are errors.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{metrics, nowt, nowt_cmd, stderr, untimed};

#[test]
fn a_loss_that_explodes_stops_the_run_naming_epoch_step_and_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // Feedback alignment at a rate far too high: the loss passes 100 × ln(10) within steps,
    // long before anything is non-finite.
    let o = nowt(&[
        "train",
        "--rule",
        "fa",
        "--lr",
        "2",
        "--epochs",
        "3",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("training diverged at epoch 1, step"), "{err}");
    assert!(err.contains("the training loss reached"), "{err}");
    assert!(err.contains("the layer that grew most is fc"), "{err}");
    assert!(!run.join("summary.json").exists());
    // The run's directory keeps the reason, as a comparison's runs do.
    let why = std::fs::read_to_string(run.join("failed.txt")).unwrap();
    assert!(why.contains("training diverged at epoch 1, step"), "{why}");
    // --allow-divergence lets the same run go on (to whatever end).
    let run2 = tmp.path().join("run2");
    let o = nowt(&[
        "train",
        "--rule",
        "fa",
        "--lr",
        "2",
        "--epochs",
        "1",
        "--allow-divergence",
        "--out",
        run2.to_str().unwrap(),
    ]);
    assert!(
        !stderr(&o).contains("divergence_loss_factor"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn weights_that_grow_past_the_factor_stop_the_run_and_keep_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--schedule",
        "constant",
        "--lr",
        "0.05",
        "--divergence-weight-factor",
        "1.2",
        "--checkpoint-every",
        "5",
        "--out",
        run.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training diverged at epoch 1, step 16: ‖W‖ of layer fc2 grew to"),
        "{err}"
    );
    assert!(err.contains("divergence_weight_factor 1.2"), "{err}");
    assert!(err.contains("last good checkpoint is kept"), "{err}");
    let newest = nowt::checkpoint::list(&run.join("checkpoints"));
    let (_, st, _, _) = nowt::checkpoint::load(&newest[0]).unwrap();
    assert_eq!(
        (st.epoch, st.step),
        (0, 15),
        "the checkpoint before the check"
    );
}

#[test]
fn off_a_terminal_every_epoch_is_a_plain_line_and_the_run_directory_comes_first() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // The test harness pipes stderr: what `nohup`, `| tee` or a scheduler sees.
    let o = nowt(&[
        "train",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--log-every",
        "20",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("nowt: run "), "{err}");
    assert!(lines[1].starts_with("nowt: loading digits"), "{err}");
    for e in 1..=3 {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("epoch {e:>3}/3"))),
            "epoch {e}: {err}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("epoch 1 step 20/")),
        "{err}"
    );
    // Each epoch's evaluation is announced (with step lines asked for) before its line.
    let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    for e in 1..=3 {
        let (said, done) = (
            at(&format!("epoch {e}: evaluating")),
            at(&format!("epoch {e:>3}/3")),
        );
        assert!(said.is_some() && said < done, "epoch {e}: {err}");
    }
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "-q",
        "--out",
        tmp.path().join("q").to_str().unwrap(),
    ]);
    assert!(stderr(&o).is_empty(), "-q prints nothing: {}", stderr(&o));
}

#[test]
fn sigterm_checkpoints_prints_the_resume_command_and_exits_143() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = signal_a_training_run(tmp.path(), "-TERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains("SIGTERM; checkpoint saved. Continue with: nowt train --resume"),
        "{err}"
    );
    let newest = nowt::checkpoint::list(&run.join("checkpoints"));
    assert!(!newest.is_empty());
    let (_, st, _, _) = nowt::checkpoint::load(&newest[0]).unwrap();
    assert!(st.epoch >= 1);
}

/// A run whose stdout and stderr are closed while it trains (`nowt train … | head`, a killed
/// `tee`): the output stops, the run does not. Then SIGHUP (a dropped ssh session) checkpoints
/// like SIGTERM and exits with 129.
#[test]
fn a_closed_pipe_never_kills_a_run_and_sighup_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut child = nowt_cmd(&[
        "train",
        "--epochs",
        "3",
        "--log-every",
        "1",
        "--out",
        run.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Both pipes closed before the first epoch line is written.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(run.join("summary.json").exists());
    assert_eq!(metrics(&run).len(), 3);
    for cmd in [
        vec!["rules"],
        vec!["presets"],
        vec!["report", run.to_str().unwrap()],
    ] {
        let mut child = nowt_cmd(&cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{cmd:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {err}");
    }

    let (out, run) = signal_a_training_run(tmp.path(), "-HUP");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(129), "{err}");
    assert!(err.contains("SIGHUP; checkpoint saved"), "{err}");
    assert!(!nowt::checkpoint::list(&run.join("checkpoints")).is_empty());
}

/// Two processes on one run directory: the second is refused at once, naming the first, and
/// the first finishes undisturbed; a report refuses records that repeat epochs.
#[test]
fn a_second_writer_of_a_run_is_refused_and_mixed_records_are_not_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let child = spawn_until_first_epoch(
        &[
            "train",
            "--hidden",
            "512,512",
            "--epochs",
            "4",
            "--batch-size",
            "16",
            "--out",
            run.to_str().unwrap(),
        ],
        &run,
    );
    let o = nowt(&["train", "--resume", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "another process (pid {}) is writing it",
            child.id()
        )),
        "{err}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(metrics(&run).len(), 4);
    // The records of a run written twice, as two unlocked processes left them.
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    std::fs::write(run.join("metrics.jsonl"), format!("{text}{text}")).unwrap();
    let o = nowt(&["report", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 5: epoch 1 where epoch 5 belongs"),
        "{err}"
    );
}

/// The mirror's warm-up is announced before it runs, timed, and counted in the run's total
/// and the report's wall time.
#[test]
fn the_warm_up_is_shown_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--rule",
        "wm",
        "--hidden",
        "256,256",
        "--wm-warmup-batches",
        "2000",
        "--epochs",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warming up B: 2000 noise batches before the first step"),
        "{err}"
    );
    assert!(err.contains("warm-up done in"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let warmup = summary["warmup_seconds"].as_f64().unwrap();
    let epochs: f64 = metrics(&run)
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap())
        .sum();
    assert!(warmup > 0.0);
    assert!(summary["total_seconds"].as_f64().unwrap() >= warmup + epochs);
    let text = std::fs::read_to_string(run.join("summary.txt")).unwrap();
    assert!(text.contains("of it the rule's warm-up"), "{text}");
    let o = nowt(&["report", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("| of it warm-up min |"), "{md}");
    // Backprop has none to show.
    let bp = tmp.path().join("bp");
    let o = nowt(&["train", "--epochs", "1", "--out", bp.to_str().unwrap()]);
    assert!(!stderr(&o).contains("warming up"));
}

/// A long training run in `<tmp>/<signal>` sent `signal` (`-TERM`) once it has a first epoch's
/// record: how it ended, and its directory.
fn signal_a_training_run(
    tmp: &std::path::Path,
    signal: &str,
) -> (std::process::Output, std::path::PathBuf) {
    let run = tmp.join(signal.trim_start_matches('-'));
    let child = spawn_until_first_epoch(
        &[
            "train",
            "--hidden",
            "512,512",
            "--epochs",
            "50",
            "--batch-size",
            "8",
            "--out",
            run.to_str().unwrap(),
        ],
        &run,
    );
    std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    (child.wait_with_output().unwrap(), run)
}

/// `nowt ARGS` started with stdout discarded and stderr kept, returned once its run directory
/// `run` has a first epoch's record.
fn spawn_until_first_epoch(args: &[&str], run: &std::path::Path) -> std::process::Child {
    let child = nowt_cmd(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while metrics_lines(run) < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no epoch in a minute"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn metrics_lines(run: &std::path::Path) -> usize {
    if run.join("metrics.jsonl").exists() {
        metrics(run).len()
    } else {
        0
    }
}

#[test]
fn milestones_without_a_multistep_schedule_are_an_error() {
    let o = nowt(&["train", "--milestones", "100,150"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("milestones") && err.contains("only apply to schedule multistep"),
        "{err}"
    );
    let o = nowt(&[
        "train",
        "--milestones",
        "1",
        "--schedule",
        "multistep",
        "--epochs",
        "1",
        "-q",
        "--out",
        tempfile::tempdir()
            .unwrap()
            .path()
            .join("r")
            .to_str()
            .unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn knobs_of_another_rule_are_an_error() {
    for (args, want) in [
        (
            &["--rule", "bp", "--kp-decay", "0.1"][..],
            "--kp-decay only apply to rule kolen-pollack",
        ),
        (
            &["--wm-lr", "0.1"][..],
            "--wm-lr only apply to rule weight-mirror",
        ),
        (
            &[
                "--rule",
                "kp",
                "--fa-init-scale",
                "2",
                "--ss-scale",
                "mean-abs",
            ][..],
            "--fa-init-scale",
        ),
    ] {
        let mut a = vec!["train"];
        a.extend(args);
        let o = nowt(&a);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

/// A negative count is refused as one, naming the flag (it was "unexpected argument '-5'").
#[test]
fn a_negative_count_is_refused_naming_its_flag() {
    for (flag, value) in [
        ("--batch-size", "-5"),
        ("--epochs", "-1"),
        ("--hidden", "10,-3"),
    ] {
        let o = nowt(&["train", flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&o);
        assert!(
            err.contains(flag) && err.contains("must be a whole number ≥ 0"),
            "{flag} {value}: {err}"
        );
    }
}

/// Keys that would do nothing are warned about before training, and the run goes ahead:
/// SGD's momentum under Adam, another rule's section of a config file, a data directory for
/// the built-in digits, milestones past the end, a warm-up longer than the run.
#[test]
fn keys_that_do_nothing_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "rule = \"backprop\"\n[rules.wm]\nlr = 0.05\n").unwrap();
    let out = tmp.path().join("r");
    let o = nowt(&[
        "train",
        "-c",
        config.to_str().unwrap(),
        "--dataset",
        "digits",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--optimizer",
        "adam",
        "--momentum",
        "0.5",
        "--epochs",
        "1",
        "--schedule",
        "multistep",
        "--milestones",
        "4",
        "--warmup-epochs",
        "2",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for want in [
        "warning: momentum = 0.5 and nesterov = false are SGD's: no effect under optimizer adam",
        "warning: rules.wm.lr = 0.05 is weight-mirror's: no effect under backprop",
        "warning: data_dir has no effect with dataset digits",
        "warning: milestones [4] are never reached",
        "warning: warmup_epochs = 2 is longer than the run",
    ] {
        assert!(err.contains(want), "want {want:?} in {err}");
    }
    assert_eq!(metrics(&out).len(), 1);
}

/// The report's command for a run repeats it: for a run extended by `--resume --epochs` (its
/// first stretch at its first length, then the extension) and for a run started by
/// `--init-from` (the same checkpoint, whose digest the report gives), the commands it prints
/// train a new directory to the same records, untimed fields bit for bit. Its summary says
/// where it came from.
#[test]
fn the_reported_command_repeats_an_extended_and_an_init_from_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let o = nowt(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    let first = ["--batch-size", "64", "--lr", "0.05", "-q", "--out"];
    ok(&[&["train", "--epochs", "2"][..], &first, &[&dir("extended")]].concat());
    ok(&["train", "--resume", &dir("extended"), "--epochs", "3", "-q"]);
    let from = [
        "train",
        "--init-from",
        &dir("extended"),
        "--epochs",
        "2",
        "-q",
        "--out",
    ];
    ok(&[&from[..], &[&dir("started")]].concat());
    // A start from a checkpoint that is not there writes nothing (it left config.toml).
    let o = nowt(&[
        "train",
        "--init-from",
        &dir("nowhere"),
        "-q",
        "--out",
        &dir("failed"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!tmp.path().join("failed").exists(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(tmp.path().join("extended/summary.txt")).unwrap();
    assert!(
        summary.contains("extended from 2 to 3 epochs after 2 epochs"),
        "{summary}"
    );
    let summary = std::fs::read_to_string(tmp.path().join("started/summary.txt")).unwrap();
    assert!(
        summary.contains("started from ") && summary.contains("(crc32:"),
        "{summary}"
    );
    for (run, want) in [
        ("extended", "extended from 2 to 3 epochs after 2 epochs"),
        ("started", "started from "),
    ] {
        ok(&["report", &dir(run), "--out", &dir(&format!("report-{run}"))]);
        let md =
            std::fs::read_to_string(tmp.path().join(format!("report-{run}/report.md"))).unwrap();
        let line = md
            .lines()
            .find(|l| l.contains("repeats it"))
            .expect("a runs line");
        assert!(line.contains(want), "{line}");
        let cmd = line.split('`').nth(3).expect("the command in backticks");
        let again = dir(&format!("{run}-again"));
        let bin = env!("CARGO_BIN_EXE_nowt");
        let cmd = cmd
            .replace("NEW_DIR", &again)
            .replace("nowt train", &format!("{bin} train"));
        let o = std::process::Command::new("sh")
            .args(["-c", &format!("{cmd} -q")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        let orig = untimed(metrics(&tmp.path().join(run)));
        assert_eq!(orig.len(), if run == "extended" { 3 } else { 2 });
        assert_eq!(
            untimed(metrics(std::path::Path::new(&again))),
            orig,
            "{cmd}"
        );
    }
}

/// Every flag of every subcommand has a description, and every flag that takes a value shows
/// its default (or is a required/positional argument).
#[test]
fn every_flag_in_help_has_a_description_and_a_default() {
    for cmd in ["train", "compare", "report", "eval", "bench", "presets"] {
        let o = nowt(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = help.lines().collect();
        let mut problems = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_flag =
                t.starts_with("--") || (t.starts_with('-') && t.chars().nth(2) == Some(','));
            if !is_flag {
                continue;
            }
            let name = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap_or(t);
            if name == "--help" || name == "--version" {
                continue;
            }
            // Short help puts the description on the flag's line, long help below it.
            let inline = t.split_once("  ").map(|(_, d)| d.trim()).unwrap_or("");
            let below: String = lines[i + 1..]
                .iter()
                .take_while(|d| !d.trim_start().starts_with('-') && !d.trim().is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let text = format!("{inline} {below}");
            if text.trim().is_empty() {
                problems.push(format!("{cmd} {name}: no description"));
                continue;
            }
            let takes_value = t.contains('<');
            if takes_value && !text.contains("[default") && !text.contains("(default") {
                problems.push(format!("{cmd} {name}: no default shown"));
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

/// With a validation split the best epoch is chosen on validation, reported with the test error
/// at that epoch, and its checkpoint kept as `ckpt-best.safetensors`; without one the summary
/// says no model selection was done.
#[test]
fn best_is_chosen_on_validation_and_its_checkpoint_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--epochs",
        "4",
        "--val-fraction",
        "0.2",
        "--batch-size",
        "32",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&run);
    let (val, epoch, test) = m
        .iter()
        .map(|r| {
            (
                r["val"]["top1_err"].as_f64().unwrap(),
                r["epoch"].as_u64().unwrap() as usize,
                r["test"]["top1_err"].as_f64().unwrap(),
            )
        })
        .reduce(|a, b| if b.0 < a.0 { b } else { a })
        .unwrap();
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["selected"]["epoch"].as_u64().unwrap() as usize, epoch);
    assert_eq!(s["selected"]["val_top1_err"].as_f64().unwrap(), val);
    assert_eq!(s["selected"]["test_top1_err"].as_f64().unwrap(), test);
    let best = run.join("checkpoints/ckpt-best.safetensors");
    let (_, st, _, _) = nowt::checkpoint::load(&best).unwrap();
    assert_eq!((st.epoch, st.step), (epoch, 0));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains(&format!("selected on validation: epoch {epoch}")));
    // Without a validation split: no selection, no best checkpoint, and the summary says so.
    let run = tmp.path().join("plain");
    let o = nowt(&["train", "--epochs", "2", "--out", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no model selection"));
    assert!(!run.join("checkpoints/ckpt-best.safetensors").exists());
}

/// A checkpoint with 100 flipped bytes in its tensor data: eval refuses it naming the checksum,
/// and resume skips it (with a warning) for the one before it.
#[test]
fn a_checkpoint_with_flipped_bytes_is_refused_by_eval_and_skipped_by_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--epochs",
        "3",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success());
    let newest = nowt::checkpoint::list(&run.join("checkpoints")).remove(0);
    let mut bytes = std::fs::read(&newest).unwrap();
    // The header's length, then the header; the tensor data follows it.
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = bytes.len() - header;
    for i in 0..100 {
        let at = header + (i * 7919) % data;
        bytes[at] ^= 0x5a;
    }
    std::fs::write(&newest, &bytes).unwrap();
    let o = nowt(&["eval", newest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("corrupt: the tensor data's checksum"),
        "{}",
        stderr(&o)
    );
    // Resume (after asking for more epochs) falls back to the epoch-2 checkpoint.
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let o = nowt(&["train", "--resume", run.to_str().unwrap(), "-q"]);
    let err = stderr(&o);
    assert!(
        err.contains("skipping checkpoint") && err.contains("checksum"),
        "{err}"
    );
    assert!(o.status.success(), "{err}");
}

/// An MNIST-style directory of `n` 28×28 images whose pixels and labels depend on `salt`.
fn mnist_like(dir: &std::path::Path, n: usize, salt: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for stem in ["train", "t10k"] {
        let pixels: Vec<u8> = (0..n * 784)
            .map(|i| ((i * 31 + (i / 784) * 17) as u8).wrapping_add(salt))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| ((i + salt as usize) % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{stem}-images-idx3-ubyte")),
            nowt::data::idx::encode_idx(&[n, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{stem}-labels-idx1-ubyte")),
            nowt::data::idx::encode_idx(&[n], &labels),
        )
        .unwrap();
    }
}

/// A run started with a relative `--data-dir` resumes from another directory, after its data
/// moved (`--data-dir NEW`, checked by the data's fingerprint, not its path), and a finished
/// run extends with `--epochs N`: with a constant rate, exactly as a run that always had N.
#[test]
fn a_run_resumes_from_elsewhere_after_its_data_moved_and_extends_with_more_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    mnist_like(&root.join("data"), 64, 0);
    let train = |cwd: &std::path::Path, args: &[&str]| {
        let mut a = vec!["train"];
        a.extend(args);
        nowt_cmd(&a).current_dir(cwd).output().unwrap()
    };
    let common = [
        "--dataset",
        "mnist",
        "--data-dir",
        "data",
        "--hidden",
        "16",
        "--batch-size",
        "16",
        "--schedule",
        "constant",
        "--lr",
        "0.01",
        "-q",
    ];
    let mut a = common.to_vec();
    a.extend(["--epochs", "1", "--out", "run"]);
    let o = train(root, &a);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut b = common.to_vec();
    b.extend(["--epochs", "3", "--out", "whole"]);
    let o = train(root, &b);
    assert!(o.status.success(), "{}", stderr(&o));

    std::fs::rename(root.join("data"), root.join("moved")).unwrap();
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Finished: more epochs are needed to go on.
    let o = train(&elsewhere, &["--resume", "../run"]);
    assert!(
        stderr(&o).contains("give --epochs N to extend it"),
        "{}",
        stderr(&o)
    );
    // The recorded (absolute) path is gone: the error names it.
    let o = train(&elsewhere, &["--resume", "../run", "--epochs", "3"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&root.join("data").display().to_string()),
        "{}",
        stderr(&o)
    );
    // Other data at the new place is refused.
    mnist_like(&root.join("other"), 64, 1);
    let o = train(
        &elsewhere,
        &[
            "--resume",
            "../run",
            "--epochs",
            "3",
            "--data-dir",
            "../other",
        ],
    );
    assert!(
        stderr(&o).contains("is not the data this run trained on"),
        "{}",
        stderr(&o)
    );
    // The moved data is accepted, and the run extended to 3 epochs.
    let o = train(
        &elsewhere,
        &[
            "--resume",
            "../run",
            "--epochs",
            "3",
            "--data-dir",
            "../moved",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = root.join("run");
    assert_eq!(
        common::untimed(metrics(&run)),
        common::untimed(metrics(&root.join("whole")))
    );
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("epochs = 3") && cfg.contains("moved"), "{cfg}");
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("provenance.json")).unwrap())
            .unwrap();
    assert!(prov["data_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("crc32:"));
    assert!(!prov["git_commit"].as_str().unwrap().is_empty());
    assert!(prov["threads"].as_u64().unwrap() > 0);
    let changes = &prov["resumed"][0]["changes"];
    assert_eq!(changes["epochs"], serde_json::json!([1, 3]), "{prov}");
}

/// `--init-from CKPT` starts a new run from a checkpoint's weights: at a negligible learning
/// rate it ends where the checkpoint's run ended.
#[test]
fn init_from_starts_a_new_run_from_a_checkpoints_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let o = nowt(&["train", "--epochs", "3", "--out", a.to_str().unwrap(), "-q"]);
    assert!(o.status.success());
    let ckpt = nowt::checkpoint::list(&a.join("checkpoints")).remove(0);
    let b = tmp.path().join("b");
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "--lr",
        "1e-30",
        "--init-from",
        ckpt.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = |d: &std::path::Path| {
        metrics(d).last().unwrap()["test"]["top1_err"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(last(&b), last(&a));
    // Another model is refused, naming the tensor.
    let c = tmp.path().join("c");
    let o = nowt(&[
        "train",
        "--hidden",
        "17",
        "--init-from",
        ckpt.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("a checkpoint of another model"),
        "{}",
        stderr(&o)
    );
}

/// `--train-limit` and `--test-limit` on an image folder decode only the images they use: one
/// corrupt training image stops a full run (named in the error) but not a run whose subset
/// leaves it out.
#[test]
fn small_limits_decode_only_the_images_they_use() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    common::fake_image_folder(&data, &["cat", "dog"], 6, 8);
    std::fs::write(data.join("train/cat/3.png"), b"not a png").unwrap();
    let run = |extra: &[&str], out: &str| {
        let mut a = vec![
            "train",
            "--dataset",
            "image-folder",
            "--data-dir",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "-q",
        ];
        a.extend(extra);
        let out = tmp.path().join(out);
        a.extend(["--out", out.to_str().unwrap()]);
        nowt(&a)
    };
    let o = run(&[], "full");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("3.png"), "{}", stderr(&o));
    let ok = (0..8).filter(|s| {
        let seed = s.to_string();
        run(
            &["--train-limit", "2", "--test-limit", "3", "--seed", &seed],
            &format!("s{s}"),
        )
        .status
        .success()
    });
    assert!(
        ok.count() >= 4,
        "most 2-image subsets of 12 leave the corrupt one out"
    );
}

/// Every knob in the rule registry is a flag of `nowt train`, listed by `nowt rules`, and
/// refused under any other rule with a message naming its owner.
#[test]
fn every_registry_knob_is_a_flag_owned_by_its_rule() {
    use nowt::rules::RuleKind;
    let listing = String::from_utf8_lossy(&nowt(&["rules"]).stdout).into_owned();
    for owner in RuleKind::ALL {
        assert!(listing.contains(owner.name()), "{listing}");
        for knob in owner.info().knobs {
            let flag = format!("--{}", knob.flag);
            assert!(listing.contains(&flag), "nowt rules lacks {flag}");
            // Two-valued knobs take a name; every other knob takes a number.
            let value = match knob.flag {
                "ss-scale" => "mean-abs",
                "wm-init" => "zero",
                "wm-noise" => "uniform",
                _ => "1",
            };
            let other = RuleKind::ALL.into_iter().find(|&k| k != owner).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("r");
            let out = out.to_str().unwrap();
            let o = nowt(&["train", "--rule", other.alias(), &flag, value, "--out", out]);
            let want = format!("{flag} only apply to rule {}", owner.name());
            assert_eq!(o.status.code(), Some(1), "{flag}: {}", stderr(&o));
            assert!(stderr(&o).contains(&want), "{flag}: {}", stderr(&o));
        }
    }
}
