//! A comparison: several rules (and seeds, and sweep points) on one configuration, one ordinary
//! run directory each (`OUT/<rule>-s<seed>/`, `OUT/<rule>-<point>-s<seed>/`), then the report
//! ([`report`]). Started again on the same `OUT` it keeps finished runs and resumes unfinished
//! ones from their newest checkpoint, so an interrupted comparison ends with the same numbers as
//! an uninterrupted one. Every front end calls [`compare`]; it never prints, it tells.

pub mod figures;
pub mod report;
pub mod stats;
pub mod sweep;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::TrainConfig;
use crate::dist::Collective;
use crate::rules::RuleKind;
use crate::run::{ConfigFile, Finish, Origin, Progress, RunOpts};
use crate::train::ControlFlow;
use sweep::{Axis, Point};

/// Written by a run that stopped with an error (it diverged, say): the comparison goes on
/// without it and does not retry it; the report shows how far it got and why it stopped.
pub const FAILED: &str = "failed.txt";

/// What to compare.
pub struct Spec<'a> {
    /// The config file or preset underneath (its `[overrides.<rule>]` applied per rule).
    pub file: Option<&'a ConfigFile>,
    /// Each rule once, in order.
    pub rules: Vec<RuleKind>,
    /// Each seed once, in order.
    pub seeds: Vec<u64>,
    /// The sweep's axes (none: one point).
    pub grid: Vec<Axis>,
    /// The seeds the sweep chooses on (`--grid-seeds`; empty: every seed trains every point).
    /// With some, each rule trains every point at these seeds first, then only its chosen
    /// point — the lowest mean validation error over them — at the other seeds.
    pub grid_seeds: Vec<u64>,
    /// The comparison's directory (default: `runs/compare-<preset or "runs">-<seconds>`).
    pub out: Option<PathBuf>,
    /// The preset's name, for the default directory.
    pub preset: Option<String>,
}

/// `OUT/compare.toml`: how the comparison was made (the report quotes it).
#[derive(serde::Serialize)]
struct Record {
    nowt_version: String,
    command: String,
    rules: Vec<String>,
    seeds: Vec<u64>,
    /// The sweep's axes as given (`lr=0.1,0.03`); empty for none.
    grid: Vec<String>,
    /// The seeds the sweep chose on; empty: every seed.
    grid_seeds: Vec<u64>,
    config_origin: Option<String>,
    /// The config file's or preset's text, as written.
    config: Option<String>,
}

/// What a comparison tells its front end.
pub enum Note<'a> {
    /// A line to show (which run starts, which is kept, a warning).
    Line(String),
    /// Training progress of the run named `label` (`bp-s0 1/15`).
    Run {
        label: &'a str,
        progress: Progress<'a>,
    },
}

/// How a comparison ended.
#[derive(Debug)]
pub enum Ended {
    /// Every run finished or failed; the report is in `OUT/report.md`.
    Done(PathBuf),
    /// The front end asked a run to stop; starting the same comparison again continues it.
    Stopped(PathBuf),
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
    } else if !crate::checkpoint::list(&dir.join("checkpoints")).is_empty() {
        Status::Started
    } else {
        Status::New
    }
}

/// Whether two resolved configs describe the same run (where its directory and data are aside:
/// the data's identity is checked on resume by its fingerprint).
fn same_run(a: &TrainConfig, b: &TrainConfig) -> bool {
    run_identity(a) == run_identity(b)
}

/// A config with where its run and data are, and on how many threads it runs, put aside: what
/// [`same_run`] compares (a run resumed on other threads continues with the same values).
fn run_identity(c: &TrainConfig) -> TrainConfig {
    TrainConfig {
        out: None,
        data_dir: None,
        threads: 0,
        ..c.clone()
    }
}

/// The keys where the run's config (`theirs`) and this comparison's (`ours`) differ as
/// [`same_run`] sees them: `threads = 2 there, 1 here; lr = …`.
fn differences(theirs: &TrainConfig, ours: &TrainConfig) -> String {
    let a = report::config_keys(&run_identity(theirs));
    let b = report::config_keys(&run_identity(ours));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let shown = |v: Option<&String>| v.map_or("absent", String::as_str).to_string();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k} = {} there, {} here", shown(a.get(k)), shown(b.get(k))))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One run of the plan: its config, directory, and its sweep point's label (empty without a
/// grid).
struct Planned {
    cfg: TrainConfig,
    dir: PathBuf,
    point: String,
}

/// Every run's config, resolved (`base` gives a rule's config at a seed) and checked before
/// anything starts, seed by seed, rule by rule, point by point.
fn plan(
    spec: &Spec,
    out: &Path,
    base: &dyn Fn(RuleKind, u64) -> Result<TrainConfig>,
) -> Result<Vec<Planned>> {
    let mut runs: Vec<Planned> = Vec::new();
    for &seed in &spec.seeds {
        for &rule in &spec.rules {
            let base = base(rule, seed)?;
            sweep::needs_validation(&base, &spec.grid)?;
            for point in sweep::points(&spec.grid) {
                // A key the rule's [overrides.<rule>] sets keeps its published value.
                let point: Point = point
                    .into_iter()
                    .filter(|(k, _)| !spec.file.is_some_and(|f| f.overrides_key(rule, k)))
                    .collect();
                let mut cfg = sweep::apply(&base, &point)?;
                let dir = out.join(run_name(&cfg, &point));
                if runs.iter().any(|r| r.dir == dir) {
                    continue;
                }
                cfg.out = Some(dir.clone());
                runs.push(Planned {
                    cfg,
                    dir,
                    point: sweep::label(&point),
                });
            }
        }
    }
    Ok(runs)
}

/// Whether the sweep's points are all trained at `seed` (every seed, without `--grid-seeds`).
fn sweeps_at(spec: &Spec, seed: u64) -> bool {
    spec.grid_seeds.is_empty() || spec.grid_seeds.contains(&seed)
}

/// `--grid-seeds` needs a sweep, and names seeds that `--seeds` runs.
fn check_grid_seeds(spec: &Spec) -> Result<()> {
    if spec.grid_seeds.is_empty() {
        return Ok(());
    }
    if spec.grid.is_empty() {
        bail!("--grid-seeds chooses among a sweep's points: give --grid too");
    }
    if let Some(s) = spec.grid_seeds.iter().find(|s| !spec.seeds.contains(s)) {
        bail!(
            "--grid-seeds {s}: not one of --seeds (the seeds to run; the sweep's are among them)"
        );
    }
    Ok(())
}

/// The points of `rule`'s sweep (their labels) the comparison keeps, as the report chooses
/// ([`report::choose`]): the lowest mean validation error over its runs at the sweep's seeds
/// (each run's lowest over its epochs), and, where a run there stopped, its stable point.
/// `runs`: every planned run's rule, point, seed and directory (one not yet run is no run).
fn choose(spec: &Spec, runs: &[(RuleKind, String, u64, PathBuf)], rule: RuleKind) -> Choice {
    let mut points: Vec<&String> = Vec::new();
    for (r, p, _, _) in runs {
        if *r == rule && !points.contains(&p) {
            points.push(p);
        }
    }
    let candidate = |p: &String| {
        let read: Vec<(u64, report::Run)> = runs
            .iter()
            .filter(|(r, q, _, _)| *r == rule && q == p)
            .filter_map(|(_, _, seed, dir)| Some((*seed, report::Run::read(dir).ok()?)))
            .collect();
        let swept = || {
            read.iter()
                .filter(|(s, _)| sweeps_at(spec, *s))
                .map(|(_, r)| r)
        };
        report::Candidate {
            key: p.clone(),
            vals: swept().filter_map(report::lowest_val).collect(),
            stopped: read.iter().any(|(_, r)| r.failed.is_some()),
            trained: swept().next().is_some() && swept().all(|r| r.finished),
        }
    };
    let candidates: Vec<_> = points.into_iter().map(candidate).collect();
    report::choose(&candidates)
}

/// A rule's chosen point and its stable point ([`report::choose`]).
type Choice = (Option<String>, Option<String>);

/// What a comparison says of a rule's choice ([`choose`]): the point, or that there was none
/// (nothing for a rule with one point); of its stable point (`stable`), the point where there
/// is one.
fn choice_line((rule, point): &(RuleKind, Option<String>), stable: bool) -> Option<String> {
    match point {
        Some(p) if p.is_empty() => None,
        Some(p) if stable => Some(format!(
            "{}: a run at its chosen point stopped; its other seeds also run at {p}, the next \
             point on the sweep's seeds whose runs there all finished (its stable point)",
            rule.name()
        )),
        Some(p) => Some(format!(
            "{}: chose {p} on the sweep's seeds; its other seeds run there",
            rule.name()
        )),
        None if stable => None,
        None => Some(format!(
            "{}: no run of the sweep has a validation error (each stopped before its first \
             epoch ended); its other seeds are not run",
            rule.name()
        )),
    }
}

/// The comparison's directory: the one asked for, or a new one named after the preset.
fn out_dir(spec: &Spec, world: &dyn Collective) -> Result<PathBuf> {
    Ok(match &spec.out {
        Some(o) => o.clone(),
        None if world.size() > 1 => bail!(
            "{} ranks: give --out DIR, the one comparison directory every rank names (rank 0 writes it)",
            world.size()
        ),
        None => {
            let secs = crate::run::unix_seconds();
            let what = spec.preset.clone().unwrap_or_else(|| "runs".into());
            PathBuf::from(format!("runs/compare-{what}-{secs}"))
        }
    })
}

/// `OUT/compare.toml`'s text.
fn record_text(spec: &Spec, origin: &Origin) -> Result<String> {
    let record = Record {
        nowt_version: env!("CARGO_PKG_VERSION").into(),
        command: origin.command.clone(),
        rules: spec.rules.iter().map(|r| r.name().to_string()).collect(),
        seeds: spec.seeds.clone(),
        grid: spec
            .grid
            .iter()
            .map(|x| format!("{}={}", x.key, x.values.join(",")))
            .collect(),
        grid_seeds: spec.grid_seeds.clone(),
        config_origin: spec.file.map(|f| f.origin.clone()),
        config: spec.file.map(|f| f.text.clone()),
    };
    Ok(format!(
        "# How this comparison was made (written again each time it is started).\n{}",
        toml::to_string(&record).context("cannot serialise compare.toml")?
    ))
}

/// Runs the comparison `spec` describes: plans every run (`base` resolves a rule's config at a
/// seed), warns where a point's rules would decay `W` differently, writes `OUT/compare.toml`,
/// then trains, keeps or resumes each run in turn (a run that fails is recorded in its
/// `failed.txt` and the comparison goes on), and writes the report.
pub fn compare(
    spec: &Spec,
    base: &dyn Fn(RuleKind, u64) -> Result<TrainConfig>,
    opts: &RunOpts,
    world: &dyn Collective,
    on: &mut (dyn FnMut(Note) -> ControlFlow<()> + Send),
) -> Result<Ended> {
    if spec.rules.is_empty() || spec.seeds.is_empty() {
        bail!("nowt compare: --rules and --seeds need at least one value each");
    }
    check_grid_seeds(spec)?;
    let out = out_dir(spec, world)?;
    let runs = plan(spec, &out, base)?;
    let leads = world.rank() == 0;
    let mut say = |line: String| {
        if leads {
            let _ = on(Note::Line(line));
        }
    };
    // The rules of one point must decay W alike (a sweep over weight_decay is not a mismatch).
    let points: std::collections::BTreeSet<&String> = runs.iter().map(|r| &r.point).collect();
    for point in points {
        let same_point = runs.iter().filter(|r| &r.point == point);
        let (decay, equal) = report::decay_statement(same_point.map(|r| &r.cfg));
        if !equal {
            say(format!("warning: {}", decay.replace('`', "")));
        }
    }
    // With several ranks, rank 0 alone writes: the record, the runs' directories, the report.
    let record = record_text(spec, &opts.origin)?;
    let mut _lock = None;
    if leads {
        fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        _lock = Some(crate::run::lock_dir(&out)?);
        fs::write(out.join("compare.toml"), record)
            .with_context(|| format!("cannot write {}/compare.toml", out.display()))?;
    }
    // The sweep's runs first; with --grid-seeds the other seeds then at each rule's choice,
    // then at its stable point where a run at the choice stopped.
    let known: Vec<(RuleKind, String, u64, PathBuf)> = runs
        .iter()
        .map(|r| (r.cfg.rule, r.point.clone(), r.cfg.seed, r.dir.clone()))
        .collect();
    let (sweep, rest): (Vec<Planned>, Vec<Planned>) =
        runs.into_iter().partition(|r| sweeps_at(spec, r.cfg.seed));
    let rest_seeds = spec.seeds.iter().filter(|&&s| !sweeps_at(spec, s)).count();
    let mut n = sweep.len() + spec.rules.len() * rest_seeds;
    let mut done = 0;
    // Runs one planned run, numbered; returns whether it was asked to stop.
    let mut run_next =
        |planned: Planned, n: usize, on: &mut (dyn FnMut(Note) -> ControlFlow<()> + Send)| {
            done += 1;
            let name = planned
                .dir
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into());
            let label = format!("{name} {done}/{n}");
            let what = format!("run {done}/{n}: {name}");
            one_run(planned, &what, &label, opts, world, on)
        };
    let interrupted = |on: &mut (dyn FnMut(Note) -> ControlFlow<()> + Send)| {
        if leads {
            let _ = on(Note::Line(format!(
                "interrupted; start the same command again to continue ({})",
                out.display()
            )));
        }
        Ok(Ended::Stopped(out.clone()))
    };
    for planned in sweep {
        if run_next(planned, n, on)? {
            return interrupted(on);
        }
    }
    let mut rest = rest;
    for stable in [false, true] {
        if rest.is_empty() {
            break;
        }
        // Every rank reads the same finished runs, so every rank chooses alike.
        crate::dist::any(world, false);
        let choice: Vec<(RuleKind, Option<String>)> = spec
            .rules
            .iter()
            .map(|&rule| {
                let (best, fallback) = choose(spec, &known, rule);
                (rule, if stable { fallback } else { best })
            })
            .collect();
        if leads {
            for line in choice.iter().filter_map(|c| choice_line(c, stable)) {
                let _ = on(Note::Line(line));
            }
        }
        let (now, later): (Vec<Planned>, Vec<Planned>) = rest.into_iter().partition(|planned| {
            choice
                .iter()
                .any(|(rule, p)| *rule == planned.cfg.rule && p.as_ref() == Some(&planned.point))
        });
        if stable {
            n += now.len();
        }
        for planned in now {
            if run_next(planned, n, on)? {
                return interrupted(on);
            }
        }
        rest = later;
    }
    if leads {
        report::write_report(std::slice::from_ref(&out), &out)?;
    }
    Ok(Ended::Done(out))
}

/// One run of a comparison, kept, resumed or started; returns whether it was asked to stop.
fn one_run(
    planned: Planned,
    what: &str,
    label: &str,
    opts: &RunOpts,
    world: &dyn Collective,
    on: &mut (dyn FnMut(Note) -> ControlFlow<()> + Send),
) -> Result<bool> {
    let Planned { cfg, dir, .. } = planned;
    let leads = world.rank() == 0;
    let say = |on: &mut (dyn FnMut(Note) -> ControlFlow<()> + Send), line: String| {
        if leads {
            let _ = on(Note::Line(line));
        }
    };
    let st = status(&dir);
    // Every rank has read the run's status before rank 0 changes anything in it.
    crate::dist::any(world, false);
    if !matches!(st, Status::New) {
        let theirs = crate::run::read_config(&dir.join("config.toml"))?;
        if !same_run(&theirs, &cfg) {
            bail!(
                "{}: made with another configuration than this comparison's ({}); use a new --out",
                dir.display(),
                differences(&theirs, &cfg)
            );
        }
    }
    let result = match st {
        Status::Finished => {
            say(on, format!("{what}: finished earlier, kept"));
            return Ok(false);
        }
        Status::Failed(why) => {
            say(on, format!("{what}: stopped earlier ({why}), not retried"));
            return Ok(false);
        }
        Status::Started => {
            say(on, format!("{what}: resuming {}", dir.display()));
            let mut observe = |p: Progress| on(Note::Run { label, progress: p });
            // On this comparison's threads, whichever the run started on.
            let opts = RunOpts {
                threads: Some(cfg.threads),
                ..opts.clone()
            };
            crate::run::resume(&dir, &opts, None, world, &mut observe).map(|(_, f)| f)
        }
        Status::New => {
            say(on, format!("{what}: starting {}", dir.display()));
            if leads {
                fresh(&dir)?;
            }
            // The others start once the run's directory is ready.
            crate::dist::any(world, false);
            say(on, format!("loading {}", cfg.dataset.name()));
            let data = crate::run::load_data(&cfg)?;
            let mut observe = |p: Progress| on(Note::Run { label, progress: p });
            crate::run::start(cfg, &data, &dir, opts, world, &mut observe)
        }
    };
    match result {
        Ok(Finish::Finished(_)) => Ok(false),
        Ok(Finish::Stopped) => Ok(true),
        Err(e) => {
            let why = format!("{e:#}");
            say(on, format!("{what} stopped: {why}; going on without it"));
            if leads {
                fs::write(dir.join(FAILED), format!("{why}\n"))
                    .with_context(|| format!("cannot write {}/{FAILED}", dir.display()))?;
            }
            Ok(false)
        }
    }
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
