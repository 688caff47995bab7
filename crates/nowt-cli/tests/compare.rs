//! `nowt compare`, `nowt report` and the presets end to end on the embedded digits: the report's
//! numbers are the runs' own, its figures are SVG with one series per rule, and a comparison
//! killed twice and started again ends exactly like an uninterrupted one.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{final_state, metrics, nowt, nowt_cmd, stderr, untimed};

/// Two rules, two seeds, two epochs (Kolen-Pollack's `B` has its own momentum buffer).
const COMPARE: &[&str] = &[
    "compare",
    "--rules",
    "bp,kp",
    "--seeds",
    "0,1",
    "--epochs",
    "2",
    "--hidden",
    "256,256",
    "--batch-size",
    "8",
    "--lr",
    "0.01",
    "--checkpoint-every",
    "30",
    "--threads",
    "2",
    "-q",
];

const RUNS: [&str; 4] = ["bp-s0", "kp-s0", "bp-s1", "kp-s1"];

fn compare(out: &Path) -> std::process::Output {
    let mut args = COMPARE.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    nowt(&args)
}

/// The report's CSV as rows of cells, with the timing columns (wall time, images/s) dropped.
fn untimed_csv(dir: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(dir.join("report.csv")).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let keep: Vec<bool> = rows[0]
        .iter()
        .map(|h| {
            !["wall_time", "images_per_s", "warmup_min"]
                .iter()
                .any(|t| h.starts_with(t))
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c.clone())
                .collect()
        })
        .collect()
}

fn column(rows: &[Vec<String>], name: &str, rule: &str) -> f64 {
    let i = rows[0].iter().position(|h| h == name).expect(name);
    let row = rows.iter().find(|r| r[0] == rule).expect(rule);
    row[i].parse().unwrap()
}

/// The checkpoints written so far under a comparison's directory.
fn checkpoints(out: &Path) -> usize {
    RUNS.iter()
        .map(|r| nowt::checkpoint::list(&out.join(r).join("checkpoints")).len())
        .sum::<usize>()
        + RUNS
            .iter()
            .filter(|r| out.join(r).join("summary.json").exists())
            .count()
}

/// With `--probe-every`, every run has its `probes.jsonl` and the report a figure of the
/// angles against the training step: a legend entry and, in each of its two panels, a curve per
/// rule with a point per record.
#[test]
fn runs_measured_within_training_get_a_figure_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let o = nowt(&[
        "compare",
        "--rules",
        "bp,kp",
        "--epochs",
        "1",
        "--probe-every",
        "3",
        "--threads",
        "1",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The embedded digits at batch 128: 12 steps, so records at steps 0, 3, …, 12.
    for run in ["bp-s0", "kp-s0"] {
        let lines = fs::read_to_string(out.join(run).join("probes.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 5, "{run}");
    }
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("(figures/probes.svg)"), "{md}");
    let text = fs::read_to_string(out.join("figures/probes.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    for rule in ["backprop", "kolen-pollack"] {
        assert_eq!(legend_x(&doc, rule).len(), 1, "legend entries for {rule}");
    }
    for colour in ["#000000", "#2CA02C"] {
        let points: Vec<usize> = data_curves(&doc, colour).iter().map(Vec::len).collect();
        assert_eq!(points, [5, 5], "{colour}'s curves: points in each panel");
    }
}

/// The x of each legend label naming `rule` in a figure.
fn legend_x(doc: &roxmltree::Document, rule: &str) -> Vec<f64> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(rule))
        .map(|n| n.attribute("x").unwrap().parse().unwrap())
        .collect()
}

/// The x of every point of each curve (a polyline 2 px wide) drawn in `colour` in a figure's
/// data part: left of its 250-px legend column.
fn data_curves(doc: &roxmltree::Document, colour: &str) -> Vec<Vec<f64>> {
    let width: f64 = doc
        .root_element()
        .attribute("width")
        .unwrap()
        .parse()
        .unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .filter(|n| n.attribute("stroke").map(str::to_uppercase).as_deref() == Some(colour))
        .map(|n| {
            let pts = n.attribute("points").unwrap_or("");
            pts.split_whitespace()
                .map(|p| p.split(',').next().unwrap().parse().unwrap())
                .collect::<Vec<f64>>()
        })
        .filter(|x| x.iter().all(|&px| px < width - 250.0))
        .collect()
}

#[test]
fn compare_writes_runs_and_a_report_whose_numbers_are_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let o = compare(&out);
    assert!(o.status.success(), "{}", stderr(&o));
    for r in RUNS {
        assert!(out.join(r).join("summary.json").is_file(), "{r} finished");
    }
    // Kolen-Pollack's λ is the comparison's weight decay: no warning, and the report says so.
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("`W` decays by λ = 1e-4 a step under every rule"),
        "{md}"
    );
    // For a given seed every rule's run has the same configuration but for the rule (so the
    // same W₀: W is drawn from the seed's own stream).
    let cfg = |run: &str| -> nowt::config::TrainConfig {
        toml::from_str(&fs::read_to_string(out.join(run).join("config.toml")).unwrap()).unwrap()
    };
    let (bp, kp) = (cfg("bp-s1"), cfg("kp-s1"));
    assert_eq!(
        nowt::config::TrainConfig {
            rule: kp.rule,
            out: None,
            ..bp
        },
        nowt::config::TrainConfig { out: None, ..kp }
    );

    // Final test error: the mean over seeds of each run's last metrics record.
    let rows = untimed_csv(&out);
    let mut means = Vec::new();
    for (rule, alias) in [("backprop", "bp"), ("kolen-pollack", "kp")] {
        let errs: Vec<f64> = [0, 1]
            .iter()
            .map(|s| {
                let m = metrics(&out.join(format!("{alias}-s{s}")));
                100.0 * m.last().unwrap()["test"]["top1_err"].as_f64().unwrap()
            })
            .collect();
        let mean = (errs[0] + errs[1]) / 2.0;
        means.push(mean);
        let got = column(&rows, "final_test_top1_err_pct_mean", rule);
        assert!((got - mean).abs() < 1e-9, "{rule}: {got} vs {mean}");
        let std = (errs[0] - errs[1]).abs() / 2f64.sqrt();
        let got = column(&rows, "final_test_top1_err_pct_std", rule);
        assert!((got - std).abs() < 1e-9, "{rule}: std {got} vs {std}");
        let m = metrics(&out.join(format!("{alias}-s0")));
        let angle = m.last().unwrap()["layers"][2]["weight_angle_deg"]
            .as_f64()
            .unwrap();
        let m1 = metrics(&out.join(format!("{alias}-s1")));
        let angle1 = m1.last().unwrap()["layers"][2]["weight_angle_deg"]
            .as_f64()
            .unwrap();
        let got = column(&rows, "output_weight_angle_deg_mean", rule);
        assert!(
            (got - (angle + angle1) / 2.0).abs() < 1e-9,
            "{rule}: angle {got}"
        );
    }
    // Two seeds a side: Welch's test of backprop against Kolen-Pollack, row minus column.
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    let row = format!("| backprop (n = 2) | – | {:+.2} (p ", means[0] - means[1]);
    assert!(md.contains("## Differences beyond seed noise"), "{md}");
    assert!(md.contains(&row), "{row} in {md}");
    assert!(
        md.contains("| backprop | 0,1 | finished |")
            && md.contains("| kolen-pollack | 0,1 | finished |"),
        "{md}"
    );
    assert!(
        md.contains("nowt compare --rules bp,kp"),
        "the command is in the report"
    );

    // Figures: valid SVG; in each, one legend entry per rule, in a column of its own right of
    // the data (legends covered curves), and each rule's curve drawn in the data's part in its
    // own colour (backprop black, Kolen-Pollack green with circles).
    for fig in ["test_error.svg", "train_loss.svg", "depth.svg"] {
        let text = fs::read_to_string(out.join("figures").join(fig)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{fig}: {e}"));
        let svg = doc.root_element();
        assert_eq!(svg.tag_name().name(), "svg");
        let width: f64 = svg.attribute("width").unwrap().parse().unwrap();
        for rule in ["backprop", "kolen-pollack"] {
            let labels = legend_x(&doc, rule);
            assert_eq!(labels.len(), 1, "{fig}: legend entries for {rule}");
            assert!(
                labels[0] > width - 250.0,
                "{fig}: {rule}'s legend on the data"
            );
        }
        for colour in ["#000000", "#2CA02C"] {
            let panels = if fig == "depth.svg" { 2 } else { 1 };
            let curves = data_curves(&doc, colour);
            assert_eq!(curves.len(), panels, "{fig}: {colour}'s curves");
        }
    }
    let text = fs::read_to_string(out.join("figures/weight_angles.svg")).unwrap();
    roxmltree::Document::parse(&text).unwrap();
    // No run measured within training: no figure of it.
    assert!(!out.join("figures/probes.svg").exists());
    assert!(!md.contains("probes.svg"), "{md}");

    // Started again: nothing to do, the same report.
    let before = untimed_csv(&out);
    let o = compare(&out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("finished earlier, kept"),
        "{}",
        stderr(&o)
    );
    assert_eq!(untimed_csv(&out), before);

    // `nowt report` on a subset of the runs.
    let sub = tmp.path().join("sub");
    let o = nowt(&[
        "report",
        out.join("bp-s0").to_str().unwrap(),
        out.join("kp-s1").to_str().unwrap(),
        "--out",
        sub.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = untimed_csv(&sub);
    assert_eq!(rows.len(), 3, "{rows:?}");
}

/// Starts the comparison, waits for one more checkpoint than `seen`, then a moment, and kills
/// it. Returns the checkpoint count reached, or `None` if it finished first.
fn kill_after_checkpoint(out: &Path, seen: usize, extra: Duration) -> Option<usize> {
    let mut args = COMPARE.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    let mut child = nowt_cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return None;
        }
        if checkpoints(out) > seen {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(extra);
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    Some(checkpoints(out))
}

/// Killed twice on two threads and restarted on one, a comparison ends exactly like an
/// uninterrupted one on two.
#[test]
fn a_comparison_killed_twice_and_restarted_ends_like_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let o = compare(&reference);
    assert!(o.status.success(), "{}", stderr(&o));

    let out = tmp.path().join("killed");
    // Once early (inside the first run), once later (the third run or so).
    let mut kills = 0;
    let mut seen = 0;
    for (wait, extra) in [(1, 40), (8, 5)] {
        seen = seen.max(wait - 1);
        match kill_after_checkpoint(&out, seen, Duration::from_millis(extra)) {
            Some(n) => {
                kills += 1;
                seen = n;
            }
            None => break,
        }
    }
    assert_eq!(kills, 2, "the comparison finished before the second kill");
    // Restarted on one thread where it began on two: the run it was in resumes on one (no value
    // depends on the thread count) instead of being refused as another configuration.
    let mut args = COMPARE.to_vec();
    let at = args.iter().position(|&a| a == "--threads").unwrap();
    args[at + 1] = "1";
    args.extend(["--out", out.to_str().unwrap()]);
    let o = nowt(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let threads = |r: &str| fs::read_to_string(out.join(r).join("config.toml")).unwrap();
    assert!(
        threads(RUNS[3]).contains("threads = 1"),
        "{}",
        threads(RUNS[3])
    );
    for r in RUNS {
        assert_eq!(
            untimed(metrics(&out.join(r))),
            untimed(metrics(&reference.join(r))),
            "{r}: metrics"
        );
        assert_eq!(
            final_state(&out.join(r)),
            final_state(&reference.join(r)),
            "{r}: weights"
        );
    }
    assert_eq!(untimed_csv(&out), untimed_csv(&reference));
}

#[test]
fn presets_are_listed_shown_and_usable_by_train() {
    let o = nowt(&["presets"]);
    assert!(o.status.success());
    let list = String::from_utf8_lossy(&o.stdout);
    // Each description whole: what the preset is, not a line cut mid-sentence.
    assert!(list.contains("mnist-lenet              MNIST, BioTorch's LeNet and protocol\n"));
    for line in list.lines() {
        assert_eq!(
            line.matches('(').count(),
            line.matches(')').count(),
            "{line}"
        );
    }
    for p in [
        "mnist-mlp",
        "mnist-lenet",
        "fashion-mnist-lenet",
        "cifar10-resnet20",
        "cifar10-resnet20-short",
        "imagenet-resnet18",
    ] {
        assert!(list.contains(p), "{list}");
    }
    let o = nowt(&["presets", "--show", "cifar10-resnet20"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("milestones = [100, 150, 200]"), "{text}");
    let o = nowt(&["presets", "--show", "nope"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such preset"), "{}", stderr(&o));

    // The preset's network on the embedded digits, one epoch.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--preset",
        "mnist-mlp",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        cfg.contains("hidden = [500]") && cfg.contains("batch_size = 128"),
        "{cfg}"
    );
}

#[test]
fn per_rule_overrides_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(
        &cfg,
        "epochs = 1\nlr = 0.05\n[overrides.feedback-alignment]\nlr = 0.001\n",
    )
    .unwrap();
    let out = tmp.path().join("cmp");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "compare",
            "-c",
            cfg.to_str().unwrap(),
            "--rules",
            "bp,fa",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend(extra);
        nowt(&args)
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lr = |r: &str| -> f64 {
        let c: nowt::config::TrainConfig =
            toml::from_str(&fs::read_to_string(out.join(r).join("config.toml")).unwrap()).unwrap();
        c.lr
    };
    assert_eq!((lr("bp-s0"), lr("fa-s0")), (0.05, 0.001));
    // The same directory with another configuration is refused, naming the run and the key.
    let o = run(&["--epochs", "2"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "made with another configuration than this comparison's (epochs = 1 there, 2 here)"
        ),
        "{}",
        stderr(&o)
    );
    let o = nowt(&["compare", "--rule", "bp"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--rules"), "{}", stderr(&o));
}

/// Rules of one comparison that would decay `W` by different amounts (Kolen-Pollack given its
/// own `λ`) get a warning naming each rule's decay, and the report says the rows cannot be
/// ranked.
#[test]
fn a_comparison_that_decays_w_differently_warns_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let o = nowt(&[
        "compare",
        "--rules",
        "bp,kp",
        "--epochs",
        "1",
        "--kp-decay",
        "1e-3",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = "W decays differently between rules (backprop 1e-4, kolen-pollack 1e-3;";
    assert!(
        stderr(&o).contains(&format!("warning: {want}")),
        "{}",
        stderr(&o)
    );
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("these rows cannot be ranked"), "{md}");
    assert!(md.contains("no difference between rules can be told from seed noise"));
    // A sweep over the decay itself is no mismatch: the rules of each point decay W alike.
    let sweep = tmp.path().join("sweep");
    let o = nowt(&[
        "compare",
        "--rules",
        "bp,kp",
        "--epochs",
        "1",
        "--grid",
        "weight_decay=1e-4,1e-3",
        "--val-fraction",
        "0.2",
        "--out",
        sweep.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// `--grid lr=…` trains every rule at every value on a validation split; the report's table
/// keeps each rule's value with the lowest mean validation error (computed here from the runs'
/// metrics), the sweep's table and figure show every point, and a rule whose
/// `[overrides.<rule>]` sets the key keeps its published value (one run, no point in its name,
/// the value in its row's title).
#[test]
fn a_sweep_trains_every_point_and_keeps_each_rules_best_on_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "epochs = 2\n[overrides.kp]\nlr = 0.002\n").unwrap();
    let out = tmp.path().join("sweep");
    let o = nowt(&[
        "compare",
        "-c",
        cfg.to_str().unwrap(),
        "--rules",
        "bp,fa,kp",
        "--seeds",
        "0,1",
        "--grid",
        "lr=0.1,0.003",
        "--val-fraction",
        "0.2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lowest_val = |run: &str| -> f64 {
        metrics(&out.join(run))
            .iter()
            .map(|e| 100.0 * e["val"]["top1_err"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    for (rule, alias) in [("backprop", "bp"), ("feedback-alignment", "fa")] {
        let mean = |lr: &str| {
            (lowest_val(&format!("{alias}-lr{lr}-s0")) + lowest_val(&format!("{alias}-lr{lr}-s1")))
                / 2.0
        };
        let best = if mean("0.1") <= mean("0.003") {
            "0.1"
        } else {
            "0.003"
        };
        assert!(
            md.contains(&format!("\n| {rule} (lr={best}) | 0,1 | finished |")),
            "{rule} keeps lr {best}: {md}"
        );
        for lr in ["0.1", "0.003"] {
            let kept = if lr == best { "✓" } else { "" };
            let row = format!("| {rule} | lr={lr} | 0,1 | {:.2} ± ", mean(lr));
            let line = md
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("{row} in {md}"));
            assert!(line.ends_with(&format!("| {kept} |")), "{line}");
        }
    }
    assert!(out.join("kp-s0").join("summary.json").is_file());
    assert!(!out.join("kp-lr0.1-s0").exists());
    assert!(
        md.contains("\n| kolen-pollack (lr=0.002) | 0,1 | finished |"),
        "{md}"
    );
    assert!(out.join("figures").join("sweep.svg").is_file());
    let record = fs::read_to_string(out.join("compare.toml")).unwrap();
    assert!(record.contains("grid = [\"lr=0.1,0.003\"]"), "{record}");
    // Without a validation split a sweep has nothing to choose by: refused before any run.
    let o = nowt(&[
        "compare",
        "--rules",
        "bp",
        "--grid",
        "lr=0.1",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("give --val-fraction"), "{}", stderr(&o));
    assert!(!tmp.path().join("x").exists());
}

/// A grid of one point (a rule's rate given as `--grid lr=…`) has nothing to choose among: the
/// report names the rate in the rule's row and has no Sweep section.
#[test]
fn a_sweep_of_one_point_names_it_without_a_sweep_table() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "epochs = 1\n").unwrap();
    let out = tmp.path().join("one");
    let o = nowt(&[
        "compare",
        "-c",
        cfg.to_str().unwrap(),
        "--rules",
        "bp",
        "--grid",
        "lr=0.03",
        "--val-fraction",
        "0.2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("\n| backprop (lr=0.03) | 0 | finished |"),
        "{md}"
    );
    assert!(!md.contains("## Sweep"), "{md}");
}

/// `--grid-seeds 0`: every rule sweeps at seed 0 only, then trains its chosen point (the lowest
/// validation error at seed 0, computed here from the runs' metrics) at seeds 1 and 2 and no
/// other point there; a rule whose `[overrides.<rule>]` sets the key runs its one setting at
/// every seed; the report keeps the chosen point with its three seeds; started again, nothing
/// is retrained; where a seed at the chosen point stopped, the other seeds also train at the
/// rule's stable point, kept beside it. `--grid-seeds` outside `--seeds`, or without `--grid`,
/// is refused.
#[test]
fn a_sweep_on_one_seed_trains_each_rules_choice_at_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(&cfg, "epochs = 2\n[overrides.kp]\nlr = 0.002\n").unwrap();
    let out = tmp.path().join("sweep");
    let args = |grid_seeds: &str, out: &Path| -> Vec<String> {
        [
            "compare",
            "-c",
            cfg.to_str().unwrap(),
            "--rules",
            "bp,kp",
            "--seeds",
            "0,1,2",
            "--grid",
            "lr=0.1,0.003",
            "--grid-seeds",
            grid_seeds,
            "--val-fraction",
            "0.2",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| nowt(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args("0", &out));
    assert!(o.status.success(), "{}", stderr(&o));
    let lowest_val = |run: &str| -> f64 {
        metrics(&out.join(run))
            .iter()
            .map(|e| e["val"]["top1_err"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    let (v1, v3) = (lowest_val("bp-lr0.1-s0"), lowest_val("bp-lr0.003-s0"));
    assert_ne!(
        v1, v3,
        "the two points must differ for the test to tell them apart"
    );
    let (best, other) = if v1 <= v3 {
        ("0.1", "0.003")
    } else {
        ("0.003", "0.1")
    };
    for seed in [1, 2] {
        let kept = out.join(format!("bp-lr{best}-s{seed}"));
        assert!(kept.join("summary.json").is_file(), "{}", kept.display());
        assert!(!out.join(format!("bp-lr{other}-s{seed}")).exists());
    }
    for seed in [0, 1, 2] {
        assert!(out
            .join(format!("kp-s{seed}"))
            .join("summary.json")
            .is_file());
    }
    assert!(
        stderr(&o).contains(&format!("backprop: chose lr{best} on the sweep's seeds")),
        "{}",
        stderr(&o)
    );
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("\n| backprop (lr={best}) | 0,1,2 | finished |")),
        "{md}"
    );
    assert!(
        md.contains("The sweep chose on seed 0 (`--grid-seeds`)"),
        "{md}"
    );
    let record = fs::read_to_string(out.join("compare.toml")).unwrap();
    assert!(record.contains("grid_seeds = [0]"), "{record}");
    // Started again: every run kept, the same choice.
    let o = run(args("0", &out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("finished earlier, kept").count(),
        7,
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("starting"), "{}", stderr(&o));
    // A seed at the chosen point stops (here: recorded as stopped by hand): started again, the
    // rule's other seeds also train at its stable point — the other point, whose seed-0 run
    // finished — and the report keeps both rows.
    let s1 = out.join(format!("bp-lr{best}-s1"));
    fs::remove_file(s1.join("summary.json")).unwrap();
    fs::write(s1.join("failed.txt"), "diverged at epoch 2\n").unwrap();
    let o = run(args("0", &out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "backprop: a run at its chosen point stopped; its other seeds also run at lr{other}"
        )),
        "{}",
        stderr(&o)
    );
    for seed in [1, 2] {
        let stable = out.join(format!("bp-lr{other}-s{seed}"));
        assert!(
            stable.join("summary.json").is_file(),
            "{}",
            stable.display()
        );
    }
    assert!(!out.join("kp-lr0.1-s1").exists());
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains(&format!(
            "\n| backprop (lr={best}) | 0,1,2 | 2 finished, 1 stopped (see Runs) |"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "\n| backprop (lr={other}, stable) | 0,1,2 | finished |"
        )),
        "{md}"
    );
    // Refused before anything starts.
    let x = tmp.path().join("x");
    let o = run(args("3", &x));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--grid-seeds 3: not one of --seeds"),
        "{}",
        stderr(&o)
    );
    let mut no_grid = args("0", &x);
    no_grid.drain(7..9);
    let o = run(no_grid);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--grid-seeds chooses among a sweep's points"),
        "{}",
        stderr(&o)
    );
    assert!(!x.exists());
}

/// `nowt report` over runs of different networks and datasets (a digits MLP of two widths and
/// an MNIST MLP) keeps each configuration in its own row, named by what sets it apart, and says
/// in its title and first lines that the runs differ; with no sweep behind them it has no Sweep
/// section.
#[test]
fn a_report_over_different_configurations_keeps_them_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    common::fake_mnist(&mnist, 16, 16);
    let runs = tmp.path().join("runs");
    let train = |name: &str, extra: &[&str]| {
        let out = runs.join(name);
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ];
        args.extend(extra);
        let o = nowt(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    train("digits-256", &[]);
    train("digits-32", &["--hidden", "32"]);
    let dir = mnist.to_str().unwrap();
    train("mnist", &["--dataset", "mnist", "--data-dir", dir]);
    let o = nowt(&["report", runs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = fs::read_to_string(runs.join("report.md")).unwrap();
    assert!(
        md.starts_with("# nowt report: mlp on digits, mlp on mnist\n"),
        "{md}"
    );
    assert!(md.contains("**These runs are of different networks or datasets**"));
    let table = md.split("## Differences").next().unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| backprop ("))
        .collect();
    assert_eq!(rows.len(), 3, "{md}");
    assert!(
        rows.iter().any(|r| r.contains("dataset=\"mnist\"")),
        "{rows:?}"
    );
    // No sweep chose among them: every configuration is a row, with no Sweep section to say
    // which was kept.
    assert!(!md.contains("## Sweep"), "{md}");
    assert!(!runs.join("figures/sweep.svg").exists());
}

/// Each run's lines carry its own label, the warm-up's too: a rule that warms up announces it
/// as its run starts (it once came under the previous run's label, or not at all when first).
#[test]
fn each_runs_warm_up_is_announced_under_its_own_label() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let o = nowt(&[
        "compare",
        "--rules",
        "wm,bp,ia",
        "--epochs",
        "1",
        "--wm-warmup-batches",
        "3",
        "--ia-warmup-batches",
        "4",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for line in [
        "[wm-s0 1/3] warming up B: 3 noise batches",
        "[ia-s0 3/3] warming up B: 4 noise batches",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }
    assert!(!err.contains("[bp-s0 2/3] warming up"), "{err}");
}
