// Records the git commit the binary is built from (`NOWT_GIT_COMMIT`; `unknown` outside a git
// checkout), which every run writes into its `provenance.json`; and for `nowt --version`, the
// features built in (`NOWT_FEATURES`) and the CPU the code was compiled for (`NOWT_TARGET_CPU`:
// `target-cpu=native` means the building machine's, named from /proc/cpuinfo where there is one).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .map(|_| "+changes")
        .unwrap_or("");
    println!("cargo:rustc-env=NOWT_GIT_COMMIT={commit}{dirty}");
    let features = if std::env::var_os("CARGO_FEATURE_MPI").is_some() {
        "mpi"
    } else {
        "none"
    };
    println!("cargo:rustc-env=NOWT_FEATURES={features}");
    println!("cargo:rustc-env=NOWT_TARGET_CPU={}", target_cpu());
    // Run again when the commit or the sources change, so that the commit and `+changes` are
    // those of the tree compiled: HEAD, the branch it points to (a commit moves only that), the
    // index, and the sources themselves (an edit that is not staged touches none of the three).
    let mut watch: Vec<String> = ["../../.git/HEAD", "../../.git/index"]
        .map(String::from)
        .to_vec();
    if let Ok(head) = std::fs::read_to_string("../../.git/HEAD") {
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            watch.push(format!("../../.git/{branch}"));
        }
    }
    watch.extend(
        [
            "src",
            "Cargo.toml",
            "../nowt/src",
            "../nowt/Cargo.toml",
            "../../Cargo.lock",
        ]
        .map(String::from),
    );
    for f in watch {
        println!("cargo:rerun-if-changed={f}");
    }
}

/// `target-cpu=…` from the rustflags, with the building machine's CPU where it is `native`.
fn target_cpu() -> String {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    // `-C target-cpu=X` or `-Ctarget-cpu=X`.
    let cpu = flags.split(['\x1f', ' ']).find_map(|f| {
        f.strip_prefix("-Ctarget-cpu=")
            .or_else(|| f.strip_prefix("target-cpu="))
            .map(String::from)
    });
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    match cpu.as_deref() {
        Some("native") => {
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|m| m.trim().to_string())
                })
                .unwrap_or_else(|| "unknown".into());
            format!("{arch} target-cpu=native: this machine's CPU, {model}")
        }
        Some(cpu) => format!("{arch} target-cpu={cpu}"),
        None => format!("{arch}, generic"),
    }
}
