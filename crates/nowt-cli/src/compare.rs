//! `nowt compare`: several rules (and seeds) on one configuration, one ordinary run directory
//! each (`OUT/<rule>-s<seed>/`), then the report. Started again on the same `OUT` it skips
//! finished runs and resumes unfinished ones from their newest checkpoint, so an interrupted
//! comparison ends with the same numbers as an uninterrupted one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nowt::config::TrainConfig;

use crate::args::{CompareArgs, TrainArgs};
use crate::run::{self, RunOpts};
use crate::sweep::{self, Point};

/// `OUT/compare.toml`: how the comparison was made (the report quotes it).
#[derive(serde::Serialize)]
struct Record {
    nowt_version: String,
    command: String,
    rules: Vec<String>,
    seeds: Vec<u64>,
    /// The sweep's axes as given (`lr=0.1,0.03`); empty for none.
    grid: Vec<String>,
    config_origin: Option<String>,
    /// The config file's or preset's text, as written.
    config: Option<String>,
}

/// A run's directory name in a comparison: `<rule>-s<seed>`, or in a sweep
/// `<rule>-<point>-s<seed>` (`bp-lr0.1-s0`).
pub fn run_name(cfg: &TrainConfig, point: &Point) -> String {
    if point.is_empty() {
        format!("{}-s{}", cfg.rule.alias(), cfg.seed)
    } else {
        format!("{}-{}-s{}", cfg.rule.alias(), sweep::label(point), cfg.seed)
    }
}

/// Written by a run that stopped with an error (it diverged, say): the comparison goes on
/// without it and does not retry it; the report shows how far it got and why it stopped.
pub const FAILED: &str = "failed.txt";

/// Where a run of a comparison stands.
enum Status {
    Finished,
    Failed(String),
    /// Has a checkpoint to resume from.
    Started,
    /// Nothing to keep (absent, or killed before its first checkpoint).
    New,
}

fn status(dir: &Path) -> Status {
    if dir.join("summary.json").exists() {
        Status::Finished
    } else if let Ok(why) = fs::read_to_string(dir.join(FAILED)) {
        Status::Failed(why.trim().to_string())
    } else if !nowt::checkpoint::list(&dir.join("checkpoints")).is_empty() {
        Status::Started
    } else {
        Status::New
    }
}

/// Whether two resolved configs describe the same run (where its directory and data are aside:
/// the data's identity is checked on resume by its fingerprint).
fn same_run(a: &TrainConfig, b: &TrainConfig) -> bool {
    let strip = |c: &TrainConfig| TrainConfig {
        out: None,
        data_dir: None,
        ..c.clone()
    };
    strip(a) == strip(b)
}

pub fn compare(a: CompareArgs) -> Result<()> {
    let t = &a.train;
    if t.rule.is_some() || t.seed.is_some() || t.resume.is_some() {
        bail!("nowt compare: give rules with --rules and seeds with --seeds (not --rule, --seed or --resume)");
    }
    if a.rules.is_empty() || a.seeds.is_empty() {
        bail!("nowt compare: --rules and --seeds need at least one value each");
    }
    // Each rule and seed once, in the order given.
    let mut rules = a.rules.clone();
    let mut seen = std::collections::HashSet::new();
    rules.retain(|r| seen.insert(*r));
    let mut seeds = a.seeds.clone();
    let mut seen = std::collections::HashSet::new();
    seeds.retain(|s| seen.insert(*s));
    // Every run's config, resolved and checked before anything starts.
    // (config, directory, sweep point's label: empty without --grid)
    let mut runs = Vec::new();
    let world = crate::world::get();
    let out = match &t.out {
        Some(o) => o.clone(),
        None if world.size() > 1 => bail!(
            "{} ranks: give --out DIR, the one comparison directory every rank names (rank 0 writes it)",
            world.size()
        ),
        None => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let what = t.preset.clone().unwrap_or_else(|| "runs".into());
            PathBuf::from(format!("runs/compare-{what}-{secs}"))
        }
    };
    let file = run::config_file(t)?;
    for &seed in &seeds {
        for &rule in &rules {
            let ta = TrainArgs {
                rule: Some(rule),
                seed: Some(seed),
                out: None,
                ..t.clone()
            };
            let base = run::resolve(&ta)?;
            sweep::needs_validation(&base, &a.grid)?;
            for point in sweep::points(&a.grid) {
                // A key the rule's [overrides.<rule>] sets keeps its published value.
                let point: Point = point
                    .into_iter()
                    .filter(|(k, _)| !file.as_ref().is_some_and(|f| f.overrides_key(rule, k)))
                    .collect();
                let mut cfg = sweep::apply(&base, &point)?;
                let dir = out.join(run_name(&cfg, &point));
                if runs.iter().any(|(_, d, _)| *d == dir) {
                    continue;
                }
                cfg.out = Some(dir.clone());
                runs.push((cfg, dir, sweep::label(&point)));
            }
        }
    }
    let leads = world.rank() == 0;
    // The rules of one point must decay W alike (a sweep over weight_decay is not a mismatch).
    let points: std::collections::BTreeSet<&String> = runs.iter().map(|(_, _, p)| p).collect();
    for point in points {
        let same_point = runs.iter().filter(|(_, _, p)| p == point);
        let (decay, equal) = crate::report::decay_statement(same_point.map(|(c, _, _)| c));
        if leads && !equal {
            eprintln!("nowt compare: warning: {}", decay.replace('`', ""));
        }
    }
    // With several ranks, rank 0 alone writes: the record, the runs' directories, the report.
    if leads {
        fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let record = Record {
        nowt_version: env!("CARGO_PKG_VERSION").into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        rules: rules.iter().map(|r| r.name().to_string()).collect(),
        seeds: seeds.clone(),
        grid: a
            .grid
            .iter()
            .map(|x| format!("{}={}", x.key, x.values.join(",")))
            .collect(),
        config_origin: file.as_ref().map(|f| f.origin.clone()),
        config: file.map(|f| f.text),
    };
    let record = format!(
        "# How this comparison was made (written again each time it is started).\n{}",
        toml::to_string(&record).context("cannot serialise compare.toml")?
    );
    if leads {
        fs::write(out.join("compare.toml"), record)
            .with_context(|| format!("cannot write {}/compare.toml", out.display()))?;
    }
    let say = |line: String| {
        if leads {
            eprintln!("{line}");
        }
    };

    let n = runs.len();
    for (i, (cfg, dir, _)) in runs.into_iter().enumerate() {
        let name = dir
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into());
        let what = format!("run {}/{n}: {name}", i + 1);
        let opts = RunOpts {
            label: format!("[{name} {}/{n}] ", i + 1),
            ..RunOpts::of(t)
        };
        let st = status(&dir);
        // Every rank has read the run's status before rank 0 changes anything in it.
        crate::world::barrier();
        if !matches!(st, Status::New) {
            let theirs = run::read_config(&dir.join("config.toml"))?;
            if !same_run(&theirs, &cfg) {
                bail!(
                    "{}: made with another configuration than this comparison's; use a new --out",
                    dir.display()
                );
            }
        }
        let result = match st {
            Status::Finished => {
                say(format!("nowt compare: {what}: finished earlier, kept"));
                continue;
            }
            Status::Failed(why) => {
                say(format!(
                    "nowt compare: {what}: stopped earlier ({why}), not retried"
                ));
                continue;
            }
            Status::Started => {
                say(format!("nowt compare: {what}: resuming {}", dir.display()));
                run::resume(&dir, &opts)
            }
            Status::New => {
                say(format!("nowt compare: {what}: starting {}", dir.display()));
                if leads {
                    fresh(&dir)?;
                }
                // The others start once the run's directory is ready.
                crate::world::barrier();
                let data = run::load_data_logged(&cfg, opts.quiet)?;
                run::start(cfg, &data, &dir, &opts)
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.is::<run::Interrupted>() => {
                say(format!(
                    "nowt compare: interrupted; start the same command again to continue ({})",
                    out.display()
                ));
                return Err(e);
            }
            Err(e) => {
                let why = format!("{e:#}");
                say(format!(
                    "nowt compare: {what} stopped: {why}; going on without it"
                ));
                if leads {
                    fs::write(dir.join(FAILED), format!("{why}\n"))
                        .with_context(|| format!("cannot write {}/{FAILED}", dir.display()))?;
                }
            }
        }
    }
    if leads {
        crate::report::write_report(std::slice::from_ref(&out), &out)?;
        eprintln!(
            "nowt compare: report in {}",
            out.join("report.md").display()
        );
    }
    Ok(())
}

/// Empties what a run killed before its first checkpoint left behind.
fn fresh(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in ["config.toml", "metrics.jsonl"] {
        let p = dir.join(f);
        if p.exists() {
            fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
