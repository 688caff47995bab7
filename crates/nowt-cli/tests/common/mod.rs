//! Helpers shared by the end-to-end tests: running the binary and reading run directories.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The `nowt` binary with `args`, not yet run.
pub fn nowt_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nowt"));
    c.args(args);
    c
}

/// Runs `nowt` with `args` to completion.
pub fn nowt(args: &[&str]) -> Output {
    nowt_cmd(args).output().expect("run nowt")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The records of `<dir>/metrics.jsonl`.
pub fn metrics(dir: &Path) -> Vec<Value> {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The records with their timing fields removed.
pub fn untimed(mut records: Vec<Value>) -> Vec<Value> {
    for r in records.iter_mut() {
        let o = r.as_object_mut().unwrap();
        o.remove("seconds");
        o.remove("images_per_s");
        o.remove("data_wait_s");
    }
    records
}

/// `nowt train` of ResNet-20 on the image folder at `data` under `rule`: the arguments before a
/// test's own.
pub fn resnet_on_images<'a>(data: &'a Path, rule: &'a str) -> Vec<&'a str> {
    let data = data.to_str().unwrap();
    let dataset = ["train", "--dataset", "image-folder", "--data-dir", data];
    [&dataset[..], &["--model", "resnet20", "--rule", rule]].concat()
}

/// Writes an image folder `root/{train,test}/<class>/<i>.png` of `size`×`size` RGB images whose
/// colour depends on the class, `per_class` per class and split.
pub fn fake_image_folder(root: &Path, classes: &[&str], per_class: usize, size: u32) {
    for split in ["train", "test"] {
        for (k, class) in classes.iter().enumerate() {
            let dir = root.join(split).join(class);
            fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let img = image::RgbImage::from_fn(size, size, |x, y| {
                    image::Rgb([
                        (k * 90) as u8,
                        ((x + y) * 9 + i as u32) as u8,
                        (255 - k * 90) as u8,
                    ])
                });
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

/// `tar czf archive -C dir name`: the `.tar.gz` of `dir/name`.
pub fn tar_gz(archive: &Path, dir: &Path, name: &str) {
    let ok = std::process::Command::new("tar")
        .args([
            "czf",
            archive.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            name,
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "tar failed");
}

/// Writes an MNIST-style directory with `n` images of 28×28 and `m` labels.
pub fn fake_mnist(dir: &Path, n: usize, m: usize) {
    fs::create_dir_all(dir).unwrap();
    for (stem, count) in [("train", n), ("t10k", n)] {
        fs::write(
            dir.join(format!("{stem}-images-idx3-ubyte")),
            nowt::data::idx::encode_idx(&[count, 28, 28], &vec![7; count * 784]),
        )
        .unwrap();
        fs::write(
            dir.join(format!("{stem}-labels-idx1-ubyte")),
            nowt::data::idx::encode_idx(&[m], &vec![3; m]),
        )
        .unwrap();
    }
}

/// Every tensor of the newest checkpoint (parameters, feedback weights, optimiser buffers,
/// batch-norm statistics), as bits.
pub fn final_state(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let newest = nowt::checkpoint::list(&dir.join("checkpoints"))
        .into_iter()
        .next()
        .expect("a checkpoint");
    let (_, st, _, _) = nowt::checkpoint::load(&newest).unwrap();
    assert_eq!(
        st.step, 0,
        "the newest checkpoint is the end of the last epoch"
    );
    nowt::checkpoint::named_tensors(&st)
        .into_iter()
        .map(|(n, t)| (n, t.data().iter().map(|v| v.to_bits()).collect()))
        .collect()
}
