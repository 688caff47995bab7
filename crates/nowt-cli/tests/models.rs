//! Networks as descriptions from the command line (issue 30): `nowt models` lists the built-in
//! ones and `--show` prints one as a file that `--model FILE` trains exactly as the built-in
//! name does; a user's description trains, resumes, evaluates and is checked by `nowt check`.

mod common;

use common::{final_state, metrics, nowt, stderr, untimed};

/// The MLP printed by `nowt models --show mlp --hidden 32`, saved and given to `--model`, trains
/// bit for bit as `--model mlp --hidden 32` (every metric, every tensor of the last checkpoint).
#[test]
fn a_shown_description_trains_as_the_builtin_model() {
    let tmp = tempfile::tempdir().unwrap();
    let o = nowt(&["models"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    for name in ["mlp", "lenet5", "lenet-biotorch", "resnet20", "resnet50"] {
        assert!(
            list.contains(&format!("{name} ")),
            "{name} not listed:\n{list}"
        );
    }
    let o = nowt(&["models", "--show", "mlp", "--hidden", "32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = tmp.path().join("mlp.toml");
    std::fs::write(&file, &o.stdout).unwrap();
    let run = |model: &str, out: &str| {
        let dir = tmp.path().join(out);
        let args = [
            "train", "--model", model, "--hidden", "32", "--rule", "kp", "--epochs", "2",
        ];
        let o = nowt(
            &[
                &args[..],
                &["-q", "--threads", "1", "--out", dir.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        dir
    };
    let (described, builtin) = (
        run(file.to_str().unwrap(), "described"),
        run("mlp", "builtin"),
    );
    assert_eq!(untimed(metrics(&described)), untimed(metrics(&builtin)));
    assert_eq!(final_state(&described), final_state(&builtin));
}

/// A VGG-style description (convolutions with batch norm, max pooling, a residual block without
/// batch norm) trains on the digits under a rule that changes B; a run of one epoch continued to
/// two ends as an uninterrupted run of two does (every record); it evaluates from its
/// checkpoint alone and passes `nowt check --model`; a broken one is refused naming the layer.
#[test]
fn a_described_network_trains_resumes_evaluates_and_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("vgg.toml");
    std::fs::write(&file, VGG).unwrap();
    let model = file.to_str().unwrap();
    let train = |out: &str, epochs: &str| {
        let dir = tmp.path().join(out);
        // A constant rate: the cosine schedule's depends on the epochs asked for.
        let args = [
            "train",
            "--model",
            model,
            "--rule",
            "wm",
            "--epochs",
            epochs,
            "-q",
            "--schedule",
            "constant",
        ];
        let o = nowt(
            &[
                &args[..],
                &["--threads", "1", "--out", dir.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    };
    let whole = train("whole", "2");
    let part = train("part", "1");
    let o = nowt(&[
        "train",
        "--resume",
        part.to_str().unwrap(),
        "--epochs",
        "2",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(untimed(metrics(&part)), untimed(metrics(&whole)));
    let layers: Vec<String> = metrics(&whole)[1]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        layers,
        [
            "conv1",
            "conv2",
            "block1.conv1",
            "block1.conv2",
            "fc1",
            "fc2"
        ]
    );
    let ckpt = nowt::checkpoint::list(&whole.join("checkpoints"))[0].clone();
    let o = nowt(&["eval", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("top-1 err"));
    let o = nowt(&["check", "--model", model, "--rule", "bp,fa,kp,wm,dfa"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PASS  vgg-digits"));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, VGG.replace("kind = \"flatten\"", "kind = \"relu\"")).unwrap();
    let refused = tmp.path().join("refused");
    let o = nowt(&[
        "train",
        "--model",
        bad.to_str().unwrap(),
        "-q",
        "--out",
        refused.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && !refused.exists());
    let err = stderr(&o);
    assert!(
        err.contains("layer fc1: a linear layer needs flat inputs, got [16, 2, 2]"),
        "{err}"
    );
}

/// Three convolutions with batch norm and max pooling, a residual block without batch norm,
/// two linear layers: for the digits' 1×8×8 images.
const VGG: &str = r#"
name = "vgg-digits"
[[layers]]
kind = "conv"
out = 8
kernel = 3
padding = 1
[[layers]]
kind = "batch_norm"
relu = true
[[layers]]
kind = "conv"
out = 16
kernel = 3
padding = 1
[[layers]]
kind = "batch_norm"
relu = true
[[layers]]
kind = "max_pool"
kernel = 2
[[layers]]
kind = "residual"
[[layers.body]]
kind = "conv"
out = 16
kernel = 3
padding = 1
[[layers.body]]
kind = "relu"
[[layers.body]]
kind = "conv"
out = 16
kernel = 3
padding = 1
[[layers]]
kind = "max_pool"
kernel = 2
[[layers]]
kind = "flatten"
[[layers]]
kind = "linear"
out = 32
[[layers]]
kind = "relu"
[[layers]]
kind = "linear"
"#;

/// The descriptions the README shows (`examples/models/`) pass `nowt check` on their tiny
/// instances under backprop and feedback alignment.
#[test]
fn the_example_descriptions_pass_the_oracles() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{}", dir.display());
    for f in files {
        let o = nowt(&[
            "check",
            "--model",
            f.to_str().unwrap(),
            "--rule",
            "bp,fa",
            "--threads",
            "1",
        ]);
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
    }
}
