//! End to end: the `nowt` binary on the embedded data, and on broken input.

mod common;

use std::fs;

use common::{fake_mnist, metrics, nowt, stderr, untimed};
use serde_json::Value;

#[test]
fn train_on_embedded_digits_writes_a_complete_run() {
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
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("final test"), "{stdout}");
    let cfg: toml::Table = fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cfg["seed"].as_integer(), Some(0));
    assert_eq!(cfg["epochs"].as_integer(), Some(3));
    let m = metrics(&run);
    assert_eq!(m.len(), 3);
    for (i, r) in m.iter().enumerate() {
        assert_eq!(r["epoch"].as_u64(), Some(i as u64 + 1));
        assert!(r["train"]["loss"].as_f64().unwrap().is_finite());
        assert!(r["test"]["top1_err"].as_f64().unwrap() < 0.5);
        assert!(r["test"]["top5_err"].is_number());
        let layers = r["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert!(layers[0]["delta_angle_deg"].is_null());
        assert_eq!(layers[1]["delta_angle_deg"].as_f64(), Some(0.0));
    }
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"].as_u64(), Some(3));
    assert!(run.join("summary.txt").is_file());
}

#[test]
fn every_rule_trains_and_reports_its_angles() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in nowt::rules::RuleKind::ALL {
        let rule = kind.name();
        let run = tmp.path().join(rule);
        let o = nowt(&[
            "train",
            "--rule",
            rule,
            "--epochs",
            "8",
            "--out",
            run.to_str().unwrap(),
            "-q",
        ]);
        assert!(o.status.success(), "{rule}: {}", stderr(&o));
        let last = metrics(&run).pop().unwrap();
        assert!(
            last["test"]["top1_err"].as_f64().unwrap() < 0.2,
            "{rule}: {last}"
        );
        let top = &last["layers"][1];
        if rule == "direct-random-target-projection" {
            // Its D carries the target, not the layer's error, even at the output layer: no
            // ∠(W, M) to report, only the angle of its error to backprop's.
            assert!(top["weight_angle_deg"].is_null(), "{rule}: {top}");
            assert!(
                top["delta_angle_deg"].as_f64().unwrap() > 0.0,
                "{rule}: {top}"
            );
            continue;
        }
        let angle = top["weight_angle_deg"].as_f64().unwrap();
        match rule {
            "backprop" => assert_eq!(angle, 0.0),
            "sign-symmetry" => assert!(angle > 20.0 && angle < 60.0, "{angle}"),
            _ => assert!(angle > 0.0, "{rule}: {angle}"),
        }
        // The sign-concordant rules agree with W's signs everywhere, the others do not.
        let concordance = last["layers"][1]["sign_concordance"].as_f64().unwrap();
        match rule {
            "backprop" | "sign-symmetry" | "fixed-random-sign" | "batchwise-random-sign" => {
                assert_eq!(concordance, 1.0, "{rule}")
            }
            _ => assert!(concordance < 1.0, "{rule}: {concordance}"),
        }
    }
}

#[test]
fn same_seed_and_threads_give_identical_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let run = tmp.path().join(n);
            let o = nowt(&[
                "train",
                "--rule",
                "wm",
                "--epochs",
                "2",
                "--threads",
                "2",
                "--seed",
                "7",
                "--out",
                run.to_str().unwrap(),
                "-q",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            untimed(metrics(&run))
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    let other = tmp.path().join("c");
    nowt(&[
        "train",
        "--rule",
        "wm",
        "--epochs",
        "2",
        "--threads",
        "2",
        "--seed",
        "8",
        "--out",
        other.to_str().unwrap(),
        "-q",
    ]);
    assert_ne!(runs[0], untimed(metrics(&other)), "the seed must matter");
}

#[test]
fn flags_override_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    fs::write(
        &cfg,
        "rule = \"kp\"\nepochs = 1\nhidden = [16]\n[rules]\nkp_decay = 0.01\n",
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "-c",
        cfg.to_str().unwrap(),
        "--rule",
        "fa",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resolved: toml::Table = fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(resolved["rule"].as_str(), Some("feedback-alignment"));
    assert_eq!(resolved["epochs"].as_integer(), Some(1));
    assert_eq!(resolved["hidden"].as_array().unwrap().len(), 1);
    assert_eq!(resolved["rules"]["kp_decay"].as_float(), Some(0.01));
}

#[test]
fn rules_lists_all_five() {
    let o = nowt(&["rules"]);
    let s = String::from_utf8_lossy(&o.stdout);
    for name in [
        "backprop",
        "feedback-alignment",
        "sign-symmetry",
        "weight-mirror",
        "kolen-pollack",
    ] {
        assert!(s.contains(name), "{s}");
    }
}

/// `--output-layer-rule backprop`: the top layer's `M` is `W` (0°), the hidden layer's the rule's.
#[test]
fn output_layer_rule_backprop_puts_only_the_top_layer_under_backprop() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "--rule",
        "fa",
        "--hidden",
        "32,32",
        "--output-layer-rule",
        "backprop",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&run);
    let layers = m[0]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[2]["weight_angle_deg"].as_f64(), Some(0.0));
    assert!(layers[1]["weight_angle_deg"].as_f64().unwrap() > 30.0);
    let cfg = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("output_layer_rule = \"backprop\""), "{cfg}");
}

#[test]
fn check_passes_every_rule_on_the_mlp_and_refuses_an_unknown_model() {
    let o = nowt(&["check", "--model", "mlp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(!s.contains("FAIL"), "{s}");
    for check in [
        "gradient",
        "fa-control",
        "kp-identity",
        "kp-adamw",
        "mirror-law",
        "ia-mirror",
        "ia-law",
        "aa-law",
    ] {
        assert!(s.contains(check), "{s}");
    }
    for kind in nowt::rules::RuleKind::ALL {
        let lines = s
            .lines()
            .filter(|l| l.starts_with("PASS") && l.contains(&format!(" {} ", kind.name())))
            .count();
        assert!(lines >= 2, "{}: {s}", kind.name());
    }
    assert!(s.contains("all checks passed"), "{s}");
    let o = nowt(&["check", "--model", "mlp9"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--model"), "{}", stderr(&o));
}

/// Runs `nowt train` with `args` that must fail: non-zero exit, a one-line error containing
/// `expect`, no panic, and no run directory.
fn fails(args: &[&str], expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut all = vec!["train", "--out", run.to_str().unwrap(), "-q"];
    all.extend_from_slice(args);
    let o = nowt(&all);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        err.contains(expect),
        "{args:?}: expected '{expect}' in: {err}"
    );
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains(expect) || err.lines().filter(|l| !l.trim().is_empty()).count() <= 3,
        "{err}"
    );
    assert!(
        !run.join("summary.json").exists(),
        "{args:?} left a complete-looking run"
    );
    assert!(
        !run.exists() || !run.join("metrics.jsonl").exists() || args.contains(&"1e30"),
        "{args:?} created a run dir"
    );
}

#[test]
fn bad_flags_and_config_are_one_line_errors() {
    fails(&["--rule", "magic"], "unknown rule 'magic'");
    fails(&["--dataset", "imagenet7"], "unknown variant `imagenet7`");
    fails(
        &["--model", "transformer"],
        "transformer: neither a built-in model (mlp, lenet5",
    );
    fails(&["--batch-size", "0"], "batch_size");
    fails(&["--lr", "0"], "invalid lr");
    fails(&["--lr", "-0.1"], "invalid lr");
    fails(&["--epochs", "0"], "epochs");
    fails(&["--rule", "wm", "--wm-lr", "-1"], "rules.wm.lr");
    fails(
        &["--optimizer", "adam", "--adam-beta2", "1"],
        "invalid adam_beta2",
    );
    fails(
        &["--optimizer", "adamw", "--adam-eps", "0"],
        "invalid adam_eps",
    );
    fails(&["--optimizer", "lamb"], "unknown variant `lamb`");
    fails(&["--output-layer-rule", "fa"], "unknown variant `fa`");
    fails(
        &["--shortcut", "identity"],
        "invalid shortcut: identity (option A) is for the CIFAR ResNets (resnet20, resnet32, \
         resnet56), not mlp",
    );
    fails(&["--init", "gaussian"], "unknown variant `gaussian`");
    fails(
        &["--rule", "wm", "--wm-lr", "0.5", "--wm-decay", "2"],
        "lr × decay must be below 1",
    );
    fails(
        &["--rule", "aa", "--aa-lr", "0.5", "--aa-sigma", "2"],
        "2 × lr × alpha × sigma² must be below 1",
    );
    fails(&["--rule", "aa", "--aa-alpha", "0"], "rules.aa.alpha");
    fails(
        &["--rule", "bp", "--aa-beta", "2"],
        "--aa-beta only apply to rule activation-alignment",
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    fs::write(&cfg, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    fails(
        &["-c", cfg.to_str().unwrap()],
        "line 2: unknown field `learning_rate`",
    );
    fs::write(&cfg, "[rules.wm]\nsigmaa = 1\n").unwrap();
    fails(&["-c", cfg.to_str().unwrap()], "unknown field `sigmaa`");
    fails(&["-c", "/nonexistent/c.toml"], "/nonexistent/c.toml");
}

#[test]
fn broken_idx_files_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("mnist");
    let dir = d.to_str().unwrap();
    let images = d.join("train-images-idx3-ubyte");
    let labels = d.join("train-labels-idx1-ubyte");

    fails(
        &["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"],
        "/nonexistent/mnist",
    );

    fake_mnist(&d, 20, 20);
    fs::remove_file(&labels).unwrap();
    fails(
        &["--dataset", "mnist", "--data-dir", dir],
        "train-labels-idx1-ubyte: missing",
    );

    fake_mnist(&d, 20, 19);
    fails(
        &["--dataset", "mnist", "--data-dir", dir],
        "19 labels for 20 images",
    );

    fake_mnist(&d, 20, 20);
    let full = fs::read(&images).unwrap();
    fs::write(&images, &full[..full.len() - 100]).unwrap();
    fails(
        &["--dataset", "mnist", "--data-dir", dir],
        "train-images-idx3-ubyte: truncated",
    );

    // (file contents, what the error must say): nothing here may be allocated at its claimed size.
    let idx = nowt::data::idx::encode_idx;
    let cases: [(Vec<u8>, &str); 4] = [
        (b"GIF89a....".to_vec(), "bad magic"),
        (
            idx(&[4_000_000_000, 4_000_000_000, 28], &[1, 2, 3]),
            "absurd dimensions [4000000000, 4000000000, 28]",
        ),
        (
            idx(&[4_000_000_000, 28, 28], &[1, 2, 3]),
            "need 3136000000000 data bytes, file has 3",
        ),
        (idx(&[u32::MAX as usize; 4], &[]), "absurd"),
    ];
    for (bytes, expect) in cases {
        fs::write(&images, bytes).unwrap();
        fails(&["--dataset", "mnist", "--data-dir", dir], expect);
    }

    fake_mnist(&d, 20, 20);
    fs::write(&labels, nowt::data::idx::encode_idx(&[20], &[11; 20])).unwrap();
    fails(
        &["--dataset", "mnist", "--data-dir", dir],
        "label 11 out of range",
    );

    // and the same directory, repaired, trains
    fake_mnist(&d, 20, 20);
    let run = tmp.path().join("ok");
    let o = nowt(&[
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        dir,
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_existing_run_directory_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("keep.txt"), "precious").unwrap();
    let o = nowt(&["train", "--out", tmp.path().to_str().unwrap(), "-q"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"));
    assert_eq!(
        fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "precious"
    );
}

/// ResNet-20 on a small image folder trains under every rule, with CIFAR augmentation:
/// the loss is finite and the records complete.
#[test]
fn resnet20_trains_on_an_image_folder_under_every_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    common::fake_image_folder(&data, &["cat", "dog", "eel"], 6, 8);
    for kind in nowt::rules::RuleKind::ALL {
        let rule = kind.alias();
        let run = tmp.path().join(rule);
        let mut args = common::resnet_on_images(&data, rule);
        args.extend([
            "--epochs",
            "2",
            "--batch-size",
            "6",
            "--augment",
            "--out",
            run.to_str().unwrap(),
            "-q",
        ]);
        if rule == "wm" {
            args.extend(["--wm-warmup-batches", "2"]);
        }
        let o = nowt(&args);
        assert!(o.status.success(), "{rule}: {}", stderr(&o));
        let m = metrics(&run);
        assert_eq!(m.len(), 2);
        let layers = m[1]["layers"].as_array().unwrap();
        assert_eq!(
            layers.len(),
            1 + 3 * 3 * 2 + 2 + 1,
            "stem, 9 blocks × 2 convs, 2 projections, fc"
        );
        for r in &m {
            assert!(r["train"]["loss"].as_f64().unwrap().is_finite());
            assert!(r["test"]["top5_err"].is_null(), "3 classes: no top-5");
        }
    }
}

#[test]
fn broken_image_folders_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    let dir = data.to_str().unwrap();
    let args = [
        "--dataset",
        "image-folder",
        "--data-dir",
        dir,
        "--model",
        "resnet20",
    ];

    common::fake_image_folder(&data, &["a", "b"], 2, 8);
    fs::create_dir_all(data.join("train").join("empty")).unwrap();
    fails(&args, "train/empty: empty class folder");

    fs::remove_dir_all(&data).unwrap();
    common::fake_image_folder(&data, &["a", "b"], 2, 8);
    image::RgbImage::new(9, 8)
        .save(data.join("test").join("b").join("odd.png"))
        .unwrap();
    fails(&args, "odd.png: image is 9×8, the others 8×8");

    fs::remove_dir_all(&data).unwrap();
    common::fake_image_folder(&data, &["a", "b"], 2, 8);
    fs::write(
        data.join("train").join("a").join("0.png"),
        b"\x89PNG\r\n\x1a\n garbage",
    )
    .unwrap();
    fails(&args, "0.png: cannot decode image");

    fs::remove_dir_all(&data).unwrap();
    common::fake_image_folder(&data, &["a", "b"], 2, 8);
    fs::remove_dir_all(data.join("test")).unwrap();
    fails(&args, "no test/ or val/ split");

    // The same folder as a .tar.gz: it loads whole, and a truncated archive is an error.
    fs::remove_dir_all(&data).unwrap();
    common::fake_image_folder(&data, &["a", "b"], 2, 8);
    let archive = tmp.path().join("images.tar.gz");
    common::tar_gz(&archive, tmp.path(), "images");
    let run = tmp.path().join("from-archive");
    let o = nowt(&[
        "train",
        "--dataset",
        "image-folder",
        "--data-dir",
        archive.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &[
            "--dataset",
            "image-folder",
            "--data-dir",
            archive.to_str().unwrap(),
        ],
        "corrupt or truncated archive",
    );
}

/// Writes CIFAR-10 binary files (`n` train records per batch file, `n` test records) into
/// `dir/cifar-10-batches-bin/`, labels `i % 10`, pixels a function of the label.
fn fake_cifar10_bin(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let root = dir.join("cifar-10-batches-bin");
    fs::create_dir_all(&root).unwrap();
    let records = |seed: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let label = ((i + seed) % 10) as u8;
                std::iter::once(label).chain(
                    (0..3072).map(move |p| (p as u8).wrapping_mul(label).wrapping_add(i as u8)),
                )
            })
            .collect()
    };
    for b in 1..=5 {
        fs::write(root.join(format!("data_batch_{b}.bin")), records(b)).unwrap();
    }
    fs::write(root.join("test_batch.bin"), records(0)).unwrap();
    root
}

/// The official CIFAR binary format trains (directory and .tar.gz); broken files are named.
#[test]
fn cifar_binary_files_load_and_broken_ones_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fake_cifar10_bin(tmp.path(), 20);
    let run = tmp.path().join("run");
    let data = tmp.path().to_str().unwrap();
    let o = nowt(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        data,
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--batch-size",
        "25",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg_model = fs::read_to_string(run.join("summary.txt")).unwrap();
    assert!(cfg_model.contains("lenet5"), "{cfg_model}");

    // The official archive layout, read without unpacking.
    let archive = tmp.path().join("cifar-10-binary.tar.gz");
    common::tar_gz(&archive, tmp.path(), "cifar-10-batches-bin");
    let run2 = tmp.path().join("run2");
    let o = nowt(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        archive.to_str().unwrap(),
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        run2.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let args = ["--dataset", "cifar10", "--data-dir", data];
    let batch = root.join("data_batch_3.bin");
    let good = fs::read(&batch).unwrap();
    fs::write(&batch, &good[..good.len() - 100]).unwrap();
    fails(
        &args,
        "data_batch_3.bin: 61360 bytes is not a whole number of 3073-byte CIFAR records",
    );
    let mut bad = good.clone();
    bad[3073 * 2] = 12;
    fs::write(&batch, &bad).unwrap();
    fails(
        &args,
        "data_batch_3.bin: record 2: label 12 (coarse 12) out of range 0..10",
    );
    fs::remove_file(&batch).unwrap();
    fails(&args, "data_batch_3.bin is missing");
    fs::write(&batch, &good).unwrap();
    fails(&["--dataset", "cifar100", "--data-dir", data], "test.bin");
    // A corrupt archive.
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &[
            "--dataset",
            "cifar10",
            "--data-dir",
            archive.to_str().unwrap(),
        ],
        "corrupt or truncated archive",
    );
}

/// Image folders of mixed sizes train through the ImageNet transforms (`--image-size`), with
/// the background data thread's wait recorded; sizes that a model cannot take are refused.
#[test]
fn image_folders_of_any_size_train_at_an_image_size() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    common::fake_image_folder(&data, &["a", "b", "c"], 4, 40);
    image::RgbImage::from_fn(57, 23, |x, _| image::Rgb([x as u8, 3, 9]))
        .save(data.join("train").join("b").join("wide.png"))
        .unwrap();
    let run = tmp.path().join("run");
    let o = nowt(&[
        "train",
        "--dataset",
        "image-folder",
        "--data-dir",
        data.to_str().unwrap(),
        "--model",
        "resnet18",
        "--image-size",
        "32",
        "--augment",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&run);
    assert!(m[0]["data_wait_s"].as_f64().unwrap() >= 0.0);
    assert!(m[0]["train"]["loss"].as_f64().unwrap().is_finite());
    let args = [
        "--dataset",
        "image-folder",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    fails(
        &[&args[..], &["--model", "lenet5", "--image-size", "8"]].concat(),
        "lenet5 needs images of at least 12×12",
    );
    fails(
        &["--dataset", "digits", "--image-size", "32"],
        "invalid image_size: only image folders, mnist and fashion-mnist are resized",
    );
}

/// BioTorch's LeNet trains on MNIST resized to 32×32 (`--image-size 32`); without the resize it
/// is refused with the fix named.
#[test]
fn biotorch_lenet_trains_on_mnist_resized_to_32() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("mnist");
    common::fake_mnist(&d, 16, 16);
    let dir = d.to_str().unwrap();
    let base = [
        "--dataset",
        "mnist",
        "--data-dir",
        dir,
        "--model",
        "lenet-biotorch",
    ];
    fails(
        &base,
        "lenet-biotorch needs images of at least 32×32, the dataset's are 28×28",
    );
    let run = tmp.path().join("run");
    let o = nowt(
        &[
            &["train"][..],
            &base[..],
            &["--image-size", "32", "--epochs", "1", "--batch-size", "4"],
            &[
                "--init",
                "xavier-uniform",
                "--out",
                run.to_str().unwrap(),
                "-q",
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&run);
    let names: Vec<&str> = m[0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conv1", "conv2", "conv3", "fc1", "fc2"]);
}

/// `nowt bench --rule all` times every rule, one peer-format line each (naming the instruction
/// sets), then a table of each rule's step time and its ratio to backprop's; the rules with a
/// warm-up (the mirror family) and only they also time its noise batches, in their line and
/// in the table's warm-up columns.
#[test]
fn bench_rule_all_prints_every_rule_and_its_ratio_to_backprop() {
    let o = nowt(&[
        "bench",
        "--model",
        "mlp",
        "--hidden",
        "8",
        "--rule",
        "all",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("NOWT ")).collect();
    assert_eq!(lines.len(), nowt::rules::RuleKind::ALL.len(), "{out}");
    assert!(lines.iter().all(|l| l.contains(" isa=gemm:")), "{out}");
    assert!(out.contains("× backprop"), "{out}");
    for rule in nowt::rules::RuleKind::ALL {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(rule.name()))
            .unwrap_or_else(|| panic!("{} in {out}", rule.name()));
        let cols: Vec<&str> = row.split_whitespace().collect();
        if rule == nowt::rules::RuleKind::Backprop {
            assert_eq!(cols[2], "1.00", "{row}");
        }
        let default = nowt::rules::RuleConfig::default();
        let warms = nowt::rules::build::<f32>(rule, &default, 128).warmup_batches() > 0;
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(" rule={} ", rule.alias())))
            .unwrap_or_else(|| panic!("{}'s line in {out}", rule.name()));
        assert_eq!(line.contains(" warmup_batches=500 "), warms, "{line}");
        assert_eq!(line.contains(" warmup_s="), warms, "{line}");
        // Its seconds, and those seconds in backprop steps; "–" for a rule without one.
        for col in &cols[3..] {
            assert_eq!(*col != "–", warms, "{row}");
            if warms {
                assert!(col.parse::<f64>().is_ok_and(|v| v >= 0.0), "{row}");
            }
        }
        assert_eq!(cols.len(), 5, "{row}");
    }
}

/// `nowt bench --lr` sets the step size: LeNet under the weight mirror, trained on one random
/// batch again and again, leaves finite values at 0.01 where the peer's 0.05 overshoots (a
/// diverged bench is an error naming the layer, not a timing).
#[test]
fn bench_takes_its_learning_rate_from_lr() {
    let bench = |lr: &str| {
        nowt(&[
            "bench",
            "--model",
            "lenet-biotorch",
            "--rule",
            "wm",
            "--batch",
            "64",
            "--steps",
            "30",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--lr",
            lr,
        ])
    };
    let o = bench("0.01");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ms_per_step="));
    let o = bench("0.05");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bench diverged"), "{}", stderr(&o));
}

/// What a build can do is said and enforced: `--version` names the features built in and the
/// CPU the code was compiled for; without MPI, `--sync-bn` (which would do nothing) and a start
/// as one of several ranks (each would train alone into one directory) are refused, leaving
/// nothing behind; more threads than cores are warned about.
#[test]
fn the_build_says_what_it_can_do_and_refuses_what_it_cannot() {
    let o = nowt(&["--version"]);
    let v = String::from_utf8_lossy(&o.stdout).to_string();
    let features = if cfg!(feature = "mpi") { "mpi" } else { "none" };
    assert!(
        v.contains(&format!("(features: {features}; built for ")),
        "{v}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let threads = (std::thread::available_parallelism().unwrap().get() + 1).to_string();
    let args = ["train", "--epochs", "1", "-q", "--threads", &threads];
    let o = nowt(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("warning: --threads {threads} is more than")));
    if cfg!(feature = "mpi") {
        return;
    }
    let out = tmp.path().join("sync");
    let o = nowt(&["train", "--sync-bn", "-q", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && !out.exists());
    assert!(
        stderr(&o).contains("--sync-bn needs several ranks"),
        "{}",
        stderr(&o)
    );
    let o = common::nowt_cmd(&["rules"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("one of 2 ranks, but this nowt is built without MPI"));
}

/// `eval` and `--init-from` take a run directory (its newest checkpoint) as well as a file;
/// `eval --test-limit 0` evaluates a subset-tested run on the whole test set; `--resume` of a
/// directory that does not exist says so; an OS error is printed once.
#[test]
fn eval_and_init_from_take_a_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let (r, quiet) = (run.to_str().unwrap(), "-q");
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "--test-limit",
        "100",
        quiet,
        "--out",
        r,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    let o = nowt(&["eval", r]);
    assert!(
        o.status.success() && out(&o).contains("digits test, 100 samples"),
        "{}",
        out(&o)
    );
    let o = nowt(&["eval", r, "--test-limit", "0"]);
    assert!(out(&o).contains("digits test, 360 samples"), "{}", out(&o));
    let from = tmp.path().join("from");
    let f = from.to_str().unwrap();
    let o = nowt(&[
        "train",
        "--epochs",
        "1",
        "--init-from",
        r,
        quiet,
        "--out",
        f,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nowt(&["eval", tmp.path().to_str().unwrap()]);
    assert!(
        stderr(&o).contains("a directory without checkpoints"),
        "{}",
        stderr(&o)
    );
    let missing = tmp.path().join("missing");
    let o = nowt(&["train", "--resume", missing.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("no such run directory"),
        "{}",
        stderr(&o)
    );
    let o = nowt(&["eval", missing.join("c.safetensors").to_str().unwrap()]);
    assert_eq!(
        stderr(&o).matches("(os error 2)").count(),
        1,
        "{}",
        stderr(&o)
    );
}

/// A start refused after its run directory was named leaves nothing behind, not even the
/// `runs/` it made for the default directory (a description that does not fit the data).
#[test]
fn a_refused_start_leaves_no_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[layers]]\nkind = \"conv\"\nout = 2\nkernel = 3\n[[layers]]\nkind = \"linear\"\n",
    )
    .unwrap();
    let o = common::nowt_cmd(&["train", "--model", bad.to_str().unwrap(), "-q"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("layer fc1: a linear layer needs flat inputs"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("runs").exists());
}
