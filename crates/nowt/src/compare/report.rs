//! `nowt report`: a Table-1-style comparison from run directories (`report.md`, `report.csv`,
//! `figures/*.svg`). Every number is read from the runs' `metrics.jsonl`; unfinished runs are
//! shown as far as they got.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::rules::RuleKind;
use crate::train::EpochRecord;
use anyhow::{bail, Context, Result};

use crate::run::{ConfigFile, Reference};

/// One run directory as read back.
pub struct Run {
    pub dir: PathBuf,
    pub cfg: TrainConfig,
    /// One per finished epoch, in order.
    pub epochs: Vec<EpochRecord>,
    /// The records within training (`probes.jsonl`, with `probe_every`; empty without).
    pub probes: Vec<crate::train::ProbeRecord>,
    pub finished: bool,
    /// The rule's warm-up in seconds, from the summary of a finished run (`None` before runs
    /// timed it).
    pub warmup_seconds: Option<f64>,
    /// Why it stopped, if it failed (`failed.txt`).
    pub failed: Option<String>,
    /// Where it came from (`provenance.json`; `None` for a run without one).
    pub provenance: Option<crate::run::Provenance>,
}

impl Run {
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let cfg = crate::run::read_config(&dir.join("config.toml"))?;
        let path = dir.join("metrics.jsonl");
        let text = fs::read_to_string(&path).unwrap_or_default();
        let epochs = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| {
                    format!("{} line {}: not an epoch record", path.display(), i + 1)
                })
            })
            .collect::<Result<Vec<EpochRecord>>>()?;
        // Epochs 1, 2, … in order: anything else is two writers' records interleaved.
        if let Some((i, r)) = epochs.iter().enumerate().find(|(i, r)| r.epoch != i + 1) {
            bail!(
                "{} line {}: epoch {} where epoch {} belongs: its records repeat or skip epochs (two processes wrote this run?); not reported",
                path.display(),
                i + 1,
                r.epoch,
                i + 1
            );
        }
        // Unreadable probe records are left out of the figure, not an error: the epochs'
        // records are what the report stands on.
        let probes = fs::read_to_string(dir.join(crate::run::PROBES))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            cfg,
            epochs,
            probes,
            finished: dir.join("summary.json").exists(),
            warmup_seconds: fs::read_to_string(dir.join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<crate::train::Summary>(&t).ok())
                .and_then(|s| s.warmup_seconds),
            failed: fs::read_to_string(dir.join(super::FAILED))
                .ok()
                .map(|s| s.trim().to_string()),
            provenance: fs::read_to_string(dir.join("provenance.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok()),
        })
    }
}

/// The runs under `dirs`: each a run directory (it has `config.toml`) or a directory of them.
pub fn collect(dirs: &[PathBuf]) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for d in dirs {
        if d.join("config.toml").is_file() {
            runs.push(Run::read(d)?);
            continue;
        }
        let entries = fs::read_dir(d).with_context(|| format!("cannot read {}", d.display()))?;
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.toml").is_file())
            .collect();
        subs.sort();
        if subs.is_empty() {
            bail!(
                "{}: no run directories (with config.toml) in it",
                d.display()
            );
        }
        for s in subs {
            runs.push(Run::read(&s)?);
        }
    }
    Ok(runs)
}

/// The runs of one rule at one configuration (over seeds).
#[derive(Clone)]
pub struct Group<'a> {
    pub rule: RuleKind,
    /// The config keys that set this group apart from the rule's other groups (`lr=0.1`: a
    /// sweep's point); empty when the rule has one configuration.
    pub setting: String,
    /// Every config key of its runs but the seed and where they ran ([`setting_keys`]).
    pub keys: BTreeMap<String, String>,
    pub runs: Vec<&'a Run>,
    /// Kept as its rule's stable point: a run at the setting chosen on validation stopped
    /// ([`choose`]).
    pub stable: bool,
}

impl Group<'_> {
    /// The rule's name, with the setting where there is one.
    pub fn title(&self) -> String {
        match (self.setting.is_empty(), self.stable) {
            (true, _) => self.rule.name().to_string(),
            (false, false) => format!("{} ({})", self.rule.name(), self.setting),
            (false, true) => format!("{} ({}, stable)", self.rule.name(), self.setting),
        }
    }
}

/// A run's configuration apart from its seed and where and on how many threads it ran, as
/// dotted keys and TOML values.
fn setting_keys(c: &TrainConfig) -> BTreeMap<String, String> {
    config_keys(&TrainConfig {
        seed: 0,
        threads: 0,
        out: None,
        data_dir: None,
        ..c.clone()
    })
}

/// Every key of a configuration, dotted for sections (`rules.wm.lr`), with its TOML value.
pub(crate) fn config_keys(c: &TrainConfig) -> BTreeMap<String, String> {
    fn flatten(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
        for (k, v) in t {
            let key = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) => flatten(&format!("{key}."), t, out),
                v => {
                    out.insert(key, v.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(t) = toml::Table::try_from(c) {
        flatten("", &t, &mut out);
    }
    out
}

/// Sorts settings by their values, numerically where they are numbers.
fn setting_order(a: &[Option<String>], b: &[Option<String>]) -> std::cmp::Ordering {
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<f64>().ok());
    for (x, y) in a.iter().zip(b) {
        let o = match (num(x), num(y)) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// Runs grouped by rule, in the order of [`RuleKind::ALL`], and within a rule by configuration
/// (a sweep's points, in the order of their values), each named by the keys that differ among
/// the rule's runs and by the `named` keys (a sweep's, so that a rule with runs at one point so
/// far still says which).
pub fn groups<'a>(runs: &'a [Run], named: &[String]) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    for &rule in &RuleKind::ALL {
        let mut variants: Vec<(BTreeMap<String, String>, Vec<&Run>)> = Vec::new();
        for r in runs.iter().filter(|r| r.cfg.rule == rule) {
            let keys = setting_keys(&r.cfg);
            match variants.iter_mut().find(|(k, _)| *k == keys) {
                Some((_, rs)) => rs.push(r),
                None => variants.push((keys, vec![r])),
            }
        }
        let all: std::collections::BTreeSet<&String> =
            variants.iter().flat_map(|(k, _)| k.keys()).collect();
        let differing: Vec<String> = all
            .into_iter()
            .filter(|k| {
                named.contains(*k)
                    || variants
                        .iter()
                        .any(|(v, _)| v.get(*k) != variants[0].0.get(*k))
            })
            .cloned()
            .collect();
        let values = |k: &BTreeMap<String, String>| -> Vec<Option<String>> {
            differing.iter().map(|d| k.get(d).cloned()).collect()
        };
        variants.sort_by(|a, b| setting_order(&values(&a.0), &values(&b.0)));
        for (keys, rs) in &variants {
            let setting = differing
                .iter()
                .map(|d| format!("{d}={}", keys.get(d).map_or("–", String::as_str)))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(Group {
                rule,
                setting,
                keys: keys.clone(),
                runs: rs.clone(),
                stable: false,
            });
        }
    }
    out
}

/// A run's lowest validation top-1 error (%) over its epochs: what a sweep chooses by (a run
/// without a validation split, or stopped before its first epoch, has none).
pub fn lowest_val(r: &Run) -> Option<f64> {
    r.epochs
        .iter()
        .filter_map(|e| Some(100.0 * e.val.as_ref()?.top1_err))
        .reduce(f64::min)
}

/// [`lowest_val`] of each of the group's runs at one of `seeds` (every run where `seeds` is
/// empty).
pub fn val_errors(g: &Group, seeds: &[u64]) -> Vec<f64> {
    g.runs
        .iter()
        .filter(|r| at_seeds(r, seeds))
        .filter_map(|r| lowest_val(r))
        .collect()
}

/// Whether `r` is at one of `seeds` (every run is where `seeds` is empty).
fn at_seeds(r: &Run, seeds: &[u64]) -> bool {
    seeds.is_empty() || seeds.contains(&r.cfg.seed)
}

/// Of `candidates` (each with its runs' lowest validation errors) the one whose mean is lowest,
/// the first on ties; `None` where none has a value. How a sweep chooses, in the report and in
/// `nowt compare --grid-seeds` alike.
pub fn lowest_mean<K>(candidates: impl IntoIterator<Item = (K, Vec<f64>)>) -> Option<K> {
    candidates
        .into_iter()
        .filter_map(|(k, v)| Some((k, mean_std(&v)?.0)))
        .reduce(|a, b| if b.1 < a.1 { b } else { a })
        .map(|(k, _)| k)
}

/// One of a rule's sweep points as the choice sees it.
pub struct Candidate<K> {
    pub key: K,
    /// [`lowest_val`] of each of its runs at the seeds the sweep chooses on.
    pub vals: Vec<f64>,
    /// Whether a run of it, at any seed, stopped (`failed.txt`: diverged, or failed).
    pub stopped: bool,
    /// Whether it has runs at the seeds the sweep chooses on, and every one of them finished.
    pub trained: bool,
}

/// Which of a rule's sweep points a comparison keeps: `.0`, the one with the lowest mean
/// validation error ([`lowest_mean`]); `.1`, only where a run at that point stopped, its
/// *stable* point — the next by the same order among the points whose runs at the sweep's seeds
/// all finished. A rate that trains at one seed and diverges at another is then reported as it
/// happened, beside the best rate at which the rule trains; neither replaces the other, and the
/// same holds for every rule (docs/results/README.md). In the report and in `nowt compare
/// --grid-seeds` alike.
pub fn choose<K: Clone>(points: &[Candidate<K>]) -> (Option<K>, Option<K>) {
    let best = lowest_mean(points.iter().enumerate().map(|(i, c)| (i, c.vals.clone())));
    let stable = best.filter(|&b| points[b].stopped).and_then(|b| {
        lowest_mean(
            points
                .iter()
                .enumerate()
                .filter(|(i, c)| *i != b && c.trained)
                .map(|(i, c)| (i, c.vals.clone())),
        )
    });
    let key = |i: usize| points[i].key.clone();
    (best.map(key), stable.map(key))
}

/// The groups the table shows: of a sweep's points (groups of a rule that differ only in the
/// `sweep` keys) the one with the lowest mean validation error over its runs at the seeds the
/// sweep chose on (`seeds`; every seed where empty), and its stable point where a run there
/// stopped ([`choose`]), or all of them where none has a validation split; every other group
/// as it is — a run at another configuration (another output-layer rule, another network) is
/// never taken for a sweep's point.
fn chosen<'a>(groups: &[Group<'a>], sweep: &[String], seeds: &[u64]) -> Vec<Group<'a>> {
    let fixed = |g: &Group| -> BTreeMap<String, String> {
        let mut k = g.keys.clone();
        k.retain(|key, _| !sweep.contains(key));
        k
    };
    let mut out = Vec::new();
    for g in groups {
        let points: Vec<Candidate<&Group>> = groups
            .iter()
            .filter(|h| h.rule == g.rule && fixed(h) == fixed(g))
            .map(|h| Candidate {
                key: h,
                vals: val_errors(h, seeds),
                stopped: h.runs.iter().any(|r| r.failed.is_some()),
                trained: h.runs.iter().any(|r| at_seeds(r, seeds))
                    && h.runs
                        .iter()
                        .filter(|r| at_seeds(r, seeds))
                        .all(|r| r.finished),
            })
            .collect();
        let is = |k: Option<&Group>| k.is_some_and(|k| std::ptr::eq(k, g));
        match choose(&points) {
            (Some(best), stable) if points.len() > 1 => {
                if is(Some(best)) || is(stable) {
                    out.push(Group {
                        stable: is(stable),
                        ..g.clone()
                    });
                }
            }
            _ => out.push(g.clone()),
        }
    }
    out
}

/// The sweep's table: every rule at every setting, and which one the report keeps (chosen on
/// the runs at the seeds `chose_on`, every seed where empty).
fn sweep_table(all: &[Group], shown: &[Group], chose_on: &[u64]) -> String {
    let mut md = String::from(
        "## Sweep\n\nEvery rule at every setting, mean ± sample std over seeds. A rule's row \
         in the table above is its setting with the lowest mean validation error (each run's \
         lowest over its epochs); its test error at the epoch chosen on validation is the \
         number to compare, the final test error is for orientation. Where a run at that \
         setting stopped (diverged), the rule's next setting by the same order whose runs at the \
         seeds chosen on all finished is kept beside it, marked *stable*: the best rate at which \
         the rule trains, shown with the chosen one as it happened, neither replacing the \
         other. Figure: `figures/sweep.svg`.\n\n",
    );
    if !chose_on.is_empty() {
        let list: Vec<String> = chose_on.iter().map(u64::to_string).collect();
        let _ = writeln!(
            md,
            "The sweep chose on seed{} {} (`--grid-seeds`): the validation column is of those \
             runs alone, and each rule's other seeds were trained at its chosen setting only.\n",
            if chose_on.len() > 1 { "s" } else { "" },
            list.join(", ")
        );
    }
    md += "| rule | setting | seeds | lowest val top-1 err % | test top-1 err % at the epoch \
           chosen on validation | final test top-1 err % | kept |\n|---|---|---|---|---|---|---|\n";
    let test_at_val = &COLUMNS[2];
    for g in all {
        let seeds: Vec<String> = g.runs.iter().map(|r| r.cfg.seed.to_string()).collect();
        let kept = shown
            .iter()
            .find(|s| s.rule == g.rule && s.setting == g.setting)
            .map_or("", |s| if s.stable { "✓ stable" } else { "✓" });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            g.rule.name(),
            g.setting,
            seeds.join(","),
            cell(&val_errors(g, chose_on), 2),
            cell(&values(g, test_at_val), 2),
            cell(&final_errors(g), 2),
            kept
        );
    }
    md
}

/// How much `W` decays under each rule of `cfgs` (`TrainConfig::w_decay`): one sentence, and
/// whether it is the same under every rule (a comparison that decays `W` differently cannot rank
/// the rules: more decay is more regularisation).
pub fn decay_statement<'a>(cfgs: impl IntoIterator<Item = &'a TrainConfig>) -> (String, bool) {
    let mut decays: Vec<(RuleKind, f64)> = Vec::new();
    for c in cfgs {
        let d = (c.rule, c.w_decay());
        if !decays.contains(&d) {
            decays.push(d);
        }
    }
    let first = decays.first().map_or(0.0, |d| d.1);
    if decays.iter().all(|d| d.1 == first) {
        let line = format!("`W` decays by λ = {first:e} a step under every rule (`weight_decay`).");
        return (line, true);
    }
    // Each decay with its rules, the most common last as "every other rule".
    let mut values: Vec<(f64, Vec<&str>)> = Vec::new();
    for (r, d) in &decays {
        match values.iter_mut().find(|(v, _)| v == d) {
            Some((_, rs)) => rs.push(r.name()),
            None => values.push((*d, vec![r.name()])),
        }
    }
    values.sort_by_key(|(_, rs)| std::cmp::Reverse(rs.len()));
    let common = (values[0].1.len() > 1).then(|| values.remove(0).0);
    let mut each: Vec<String> = values
        .iter()
        .map(|(d, rs)| format!("{} {d:e}", rs.join(", ")))
        .collect();
    each.extend(common.map(|c| format!("every other rule {c:e}")));
    let line = format!(
        "`W` decays differently between rules ({}; `weight_decay`, `rules.kp_decay` or a rule's \
         overrides): more decay is more regularisation, so these rows cannot be ranked.",
        each.join(", ")
    );
    (line, false)
}

/// Mean and sample standard deviation (`None` for one value).
pub fn mean_std(v: &[f64]) -> Option<(f64, Option<f64>)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((m, s))
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.collect();
    mean_std(&v).map(|(m, _)| m)
}

/// One column of the table: a name, its unit and how a run gives its value.
struct Column {
    /// In report.md.
    name: &'static str,
    /// In report.csv (`<key>_mean`, `<key>_std`).
    key: &'static str,
    value: fn(&Run) -> Option<f64>,
    /// Digits after the point.
    digits: usize,
    /// Whether only finished runs count: a stopped or unfinished run's last epoch is not the
    /// end of its training (the final-state columns).
    finished_only: bool,
}

fn last(r: &Run) -> Option<&EpochRecord> {
    r.epochs.last()
}

const COLUMNS: [Column; 12] = [
    Column {
        name: "final test top-1 err %",
        key: "final_test_top1_err_pct",
        value: |r| last(r).map(|e| 100.0 * e.test.top1_err),
        digits: 2,
        finished_only: true,
    },
    Column {
        name: "lowest test top-1 err % (not a selection)",
        key: "best_test_top1_err_pct",
        value: |r| {
            r.epochs
                .iter()
                .map(|e| 100.0 * e.test.top1_err)
                .reduce(f64::min)
        },
        digits: 2,
        finished_only: false,
    },
    Column {
        name: "test top-1 err % at the epoch chosen on validation",
        key: "selected_test_top1_err_pct",
        value: |r| {
            r.epochs
                .iter()
                .filter_map(|e| Some((e.val.as_ref()?.top1_err, e.test.top1_err)))
                .reduce(|a, b| if b.0 < a.0 { b } else { a })
                .map(|(_, t)| 100.0 * t)
        },
        digits: 2,
        finished_only: true,
    },
    Column {
        name: "final test top-5 err %",
        key: "final_test_top5_err_pct",
        value: |r| last(r).and_then(|e| e.test.top5_err).map(|e| 100.0 * e),
        digits: 2,
        finished_only: true,
    },
    Column {
        name: "final train loss",
        key: "final_train_loss",
        value: |r| last(r).map(|e| e.train.loss),
        digits: 4,
        finished_only: true,
    },
    Column {
        name: "output ∠(W,M) °",
        key: "output_weight_angle_deg",
        value: |r| last(r).and_then(|e| e.layers.last()?.weight_angle_deg),
        digits: 1,
        finished_only: true,
    },
    Column {
        name: "mean ∠(W,M) °",
        key: "mean_weight_angle_deg",
        value: |r| last(r).and_then(|e| mean(e.layers.iter().filter_map(|l| l.weight_angle_deg))),
        digits: 1,
        finished_only: true,
    },
    Column {
        name: "mean ∠(δ,δbp) °",
        key: "mean_delta_angle_deg",
        value: |r| last(r).and_then(|e| mean(e.layers.iter().filter_map(|l| l.delta_angle_deg))),
        digits: 1,
        finished_only: true,
    },
    Column {
        name: "epochs",
        key: "epochs",
        value: |r| Some(r.epochs.len() as f64),
        digits: 0,
        finished_only: false,
    },
    Column {
        name: "wall time min",
        key: "wall_time_min",
        value: |r| {
            let epochs = r.epochs.iter().fold(0.0, |t, e| t + e.seconds);
            Some((epochs + r.warmup_seconds.unwrap_or(0.0)) / 60.0)
        },
        digits: 1,
        finished_only: false,
    },
    Column {
        name: "of it warm-up min",
        key: "warmup_min",
        value: |r| r.warmup_seconds.map(|w| w / 60.0),
        digits: 1,
        finished_only: false,
    },
    Column {
        name: "images/s",
        key: "images_per_s",
        value: |r| mean(r.epochs.iter().map(|e| e.images_per_s)),
        digits: 0,
        finished_only: false,
    },
];

/// A group's values for one column: one per run that has it (finished runs only, for the
/// final-state columns).
fn values(g: &Group, c: &Column) -> Vec<f64> {
    g.runs
        .iter()
        .filter(|r| r.finished || !c.finished_only)
        .filter_map(|r| (c.value)(r))
        .collect()
}

fn cell(v: &[f64], digits: usize) -> String {
    match mean_std(v) {
        None => "–".into(),
        Some((m, None)) => format!("{m:.digits$}"),
        Some((m, Some(s))) => format!("{m:.digits$} ± {s:.digits$}"),
    }
}

/// What `compare.toml` says of the comparison the runs came from, if they came from one.
struct CompareRecord {
    command: String,
    /// Its config file, if it had one.
    file: Option<ConfigFile>,
    /// The keys its sweep varied (`lr`, `rules.wm.lr`).
    sweep: Vec<String>,
    /// The seeds its sweep chose on (`--grid-seeds`; empty: every seed).
    grid_seeds: Vec<u64>,
}

fn compare_record(dirs: &[PathBuf]) -> Option<CompareRecord> {
    dirs.iter().find_map(|d| {
        let t: toml::Table =
            toml::from_str(&fs::read_to_string(d.join("compare.toml")).ok()?).ok()?;
        let command = t.get("command")?.as_str()?.to_string();
        let file = match (t.get("config_origin"), t.get("config")) {
            (Some(o), Some(c)) => ConfigFile::parse(c.as_str()?, o.as_str()?).ok(),
            _ => None,
        };
        let sweep = t
            .get("grid")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
            .filter_map(|axis| Some(axis.as_str()?.split('=').next()?.to_string()))
            .collect();
        let grid_seeds = t
            .get("grid_seeds")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| u64::try_from(s.as_integer()?).ok())
            .collect();
        Some(CompareRecord {
            command,
            file,
            sweep,
            grid_seeds,
        })
    })
}

/// How a rule's runs stand: `finished`, or the counts of finished, stopped and unfinished.
fn run_states(g: &Group) -> String {
    let stopped = g.runs.iter().filter(|r| r.failed.is_some()).count();
    let finished = g.runs.iter().filter(|r| r.finished).count();
    let going = g.runs.len() - stopped - finished;
    if finished == g.runs.len() {
        return "finished".into();
    }
    [
        (finished, "finished"),
        (stopped, "stopped (see Runs)"),
        (going, "unfinished"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// The final test top-1 errors (%) of a group's finished runs, one per seed.
fn final_errors(g: &Group) -> Vec<f64> {
    g.runs
        .iter()
        .filter(|r| r.finished)
        .filter_map(|r| Some(100.0 * last(r)?.test.top1_err))
        .collect()
}

/// The section that says which differences between rules exceed seed noise: Welch's t-test on
/// the final test errors of every pair of rules with at least two finished runs each.
fn differences(groups: &[Group]) -> String {
    let tested: Vec<(&Group, Vec<f64>)> = groups
        .iter()
        .map(|g| (g, final_errors(g)))
        .filter(|(_, e)| e.len() >= 2)
        .collect();
    let mut md = String::from("## Differences beyond seed noise\n\n");
    if tested.len() < 2 {
        md += "Fewer than two rules have two or more finished runs (seeds): no difference \
               between rules can be told from seed noise, so this table ranks nothing.\n";
        return md;
    }
    md += "Welch's t-test (two-sided, unequal variances) on the final test top-1 error of the \
           finished runs, one value per seed: each cell is the row's mean minus the column's, \
           in percentage points, with its p-value; `*` marks p < 0.05 (each pair tested on \
           its own, with no correction for the number of pairs).\n\n";
    let names: Vec<String> = tested
        .iter()
        .map(|(g, e)| format!("{} (n = {})", g.title(), e.len()))
        .collect();
    let _ = writeln!(md, "| row − column | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
    for (name, (_, a)) in names.iter().zip(&tested) {
        let cells: Vec<String> = tested
            .iter()
            .map(|(_, b)| match super::stats::welch(a, b) {
                Some(w) if !std::ptr::eq(a, b) => {
                    let star = if w.p < 0.05 { "*" } else { "" };
                    format!("{:+.2} (p {:.3}){star}", w.diff, w.p)
                }
                _ => "–".into(),
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    }
    md
}

/// The first epoch (1-based) at whose end a run's test top-1 error (%) was at most `level`.
fn first_epoch_reaching(r: &Run, level: f64) -> Option<usize> {
    // The tolerance lets a run reach its own final error, which a mean of one value rounds to.
    r.epochs
        .iter()
        .find(|e| 100.0 * e.test.top1_err <= level + 1e-9)
        .map(|e| e.epoch)
}

/// The section that says how fast each rule learns against the others: for every pair, the data
/// epochs the row's finished runs took to first reach the column's final test error (its mean
/// over seeds). A row whose runs reach a column's error in fewer epochs than the column's own
/// runs took saved that many epochs of data (issue 32: what noise pre-training saves against
/// plain feedback alignment).
fn epochs_to_reach(groups: &[Group]) -> String {
    let targets: Vec<(&Group, f64)> = groups
        .iter()
        .filter_map(|g| Some((g, mean_std(&final_errors(g))?.0)))
        .collect();
    let mut md = String::from("## Epochs to reach each rule's final error\n\n");
    if targets.len() < 2 {
        md += "Fewer than two rules have a finished run: no rule's pace can be set beside \
               another's.\n";
        return md;
    }
    md += "Each cell: the data epochs the row's finished runs took to first end an epoch at or \
           below the column's final test top-1 error (its mean over seeds, in the column's \
           title), as a mean over the row's runs; `(k of n)` where only k of its n runs got \
           there, `–` where none did. Epochs of data only: a warm-up or a noise pre-training \
           phase before the first epoch is not counted. A description of the runs, not a \
           selection (it reads the test set).\n\n";
    let names: Vec<String> = targets
        .iter()
        .map(|(g, t)| format!("{} ({t:.2} %)", g.title()))
        .collect();
    let _ = writeln!(md, "| row \\ column (final err) | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
    for (g, _) in &targets {
        let runs: Vec<&Run> = g.runs.iter().copied().filter(|r| r.finished).collect();
        let cells: Vec<String> = targets
            .iter()
            .map(|&(_, level)| {
                let reached: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| first_epoch_reaching(r, level))
                    .map(|e| e as f64)
                    .collect();
                match (mean(reached.iter().copied()), reached.len()) {
                    (None, _) => "–".into(),
                    (Some(m), k) if k == runs.len() => format!("{m:.1}"),
                    (Some(m), k) => format!("{m:.1} ({k} of {})", runs.len()),
                }
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", g.title(), cells.join(" | "));
    }
    md
}

/// Writes `report.md`, `report.csv` and `figures/` for the runs in `dirs` into `out`.
pub fn write_report(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let runs = collect(dirs)?;
    let record = compare_record(dirs);
    let sweep = record.as_ref().map_or(&[][..], |r| &r.sweep[..]);
    let all = groups(&runs, sweep);
    let grid_seeds = record.as_ref().map_or(&[][..], |r| &r.grid_seeds[..]);
    let groups = chosen(&all, sweep, grid_seeds);
    let reference: Option<&Reference> = record
        .as_ref()
        .and_then(|r| r.file.as_ref()?.reference.as_ref());
    fs::create_dir_all(out.join("figures"))
        .with_context(|| format!("cannot create {}/figures", out.display()))?;

    // The columns that have a value in some run, finished or not (top-5 only with ≥ 10
    // classes): a comparison's report keeps its columns while runs are still going.
    let cols: Vec<&Column> = COLUMNS
        .iter()
        .filter(|c| runs.iter().any(|r| (c.value)(r).is_some()))
        .collect();

    let mut md = String::new();
    let mut settings: Vec<String> = Vec::new();
    for r in &runs {
        let s = format!("{} on {}", r.cfg.model.name(), r.cfg.dataset.name());
        if !settings.contains(&s) {
            settings.push(s);
        }
    }
    let _ = writeln!(md, "# nowt report: {}\n", settings.join(", "));
    if settings.len() > 1 {
        let _ = writeln!(
            md,
            "**These runs are of different networks or datasets**: each row is one rule at one \
             configuration, named by the keys that set it apart; compare rows only within one \
             network and dataset.\n"
        );
    }
    let _ = writeln!(
        md,
        "One row per rule: mean ± sample std over seeds where there are several. Errors are \
         percentages of the test set; angles are in degrees at the last finished epoch \
         (output = the top weight layer; means over the layers that carry an error). The \
         final-state columns (final errors, loss and angles, the epoch chosen on validation) \
         count finished runs only: a stopped or unfinished run's last epoch is not the end of \
         its training. \
         `∠(W,M)`: forward weights against the matrix that carries the error; `∠(δ,δbp)`: the \
         rule's error against backprop's at each layer's input on the probe batch. Figures in \
         `figures/`. {}\n",
        decay_statement(groups.iter().flat_map(|g| g.runs.iter().map(|r| &r.cfg))).0
    );
    let mut header = String::from("| rule | seeds | runs |");
    let mut rule_line = String::from("|---|---|---|");
    for c in &cols {
        header += &format!(" {} |", c.name);
        rule_line += "---|";
    }
    if let Some(r) = reference {
        header += &format!(" published {} |", r.metric);
        rule_line += "---|";
    }
    let _ = writeln!(md, "{header}\n{rule_line}");
    let mut csv = String::from("rule,seeds,runs,finished");
    for c in &cols {
        let _ = write!(csv, ",{}_mean,{}_std", c.key, c.key);
    }
    if reference.is_some() {
        csv += ",published";
    }
    csv += ",setting\n";
    for g in &groups {
        let seeds: Vec<String> = g.runs.iter().map(|r| r.cfg.seed.to_string()).collect();
        let mut row = format!(
            "| {} | {} | {} |",
            g.title(),
            seeds.join(","),
            run_states(g)
        );
        let finished = g.runs.iter().filter(|r| r.finished).count();
        let _ = write!(
            csv,
            "{},{},{},{}",
            g.rule.name(),
            seeds.join(" "),
            g.runs.len(),
            finished
        );
        for c in &cols {
            let v = values(g, c);
            row += &format!(" {} |", cell(&v, c.digits));
            let (m, s) = mean_std(&v).map_or((None, None), |(m, s)| (Some(m), s));
            let f = |x: Option<f64>| x.map(|x| format!("{x}")).unwrap_or_default();
            let _ = write!(csv, ",{},{}", f(m), f(s));
        }
        if let Some(r) = reference {
            let v = r.value(g.rule);
            row += &format!(" {} |", v.map(|v| v.to_string()).unwrap_or("–".into()));
            let _ = write!(csv, ",{}", v.map(|v| v.to_string()).unwrap_or_default());
        }
        let _ = writeln!(md, "{row}");
        let _ = writeln!(csv, ",\"{}\"", g.setting.replace('"', "'"));
    }
    if let Some(r) = reference {
        let _ = writeln!(
            md,
            "\nPublished numbers, for orientation (not produced by nowt): {}.",
            r.source
        );
    }

    let _ = writeln!(md, "\n{}", differences(&groups));
    let _ = writeln!(md, "{}", epochs_to_reach(&groups));
    // Only a sweep's points compete: rows that differ by a key no sweep varied (runs of
    // several comparisons side by side) are all in the table above, with nothing to choose; a
    // sweep of one point (`--grid lr=0.03`: a rule's rate given as a grid) has no table.
    let competed = all
        .iter()
        .any(|g| all.iter().filter(|h| h.rule == g.rule).count() > 1);
    let swept = !sweep.is_empty() && competed;
    if swept {
        let _ = writeln!(md, "{}", sweep_table(&all, &groups, grid_seeds));
    }

    let _ = writeln!(md, "\n## Runs\n");
    for r in &runs {
        let total = r.cfg.epochs;
        let state = match (&r.failed, r.finished) {
            (Some(why), _) => format!("stopped after {} of {total} epochs: {why}", r.epochs.len()),
            (None, true) => format!("finished, {total} epochs"),
            (None, false) => format!("unfinished: {} of {total} epochs", r.epochs.len()),
        };
        let prov = r.provenance.clone().unwrap_or_default();
        let lineage: String = prov.lineage().iter().map(|l| format!("; {l}")).collect();
        let repeat = match prov.repeat_command(&r.dir, "NEW_DIR") {
            // Bit for bit with the binary that made it (results differ between builds where
            // the arithmetic changed, and between instruction sets by rounding).
            Ok(cmd) if prov.git_commit.is_empty() => format!("`{cmd}` repeats it"),
            Ok(cmd) => format!("`{cmd}` repeats it, built from {}", prov.git_commit),
            Err(why) => why,
        };
        let _ = writeln!(
            md,
            "- `{}`: {}, seed {}: {state}{lineage} ({repeat})",
            r.dir.display(),
            r.cfg.rule.name(),
            r.cfg.seed,
        );
    }
    let points = if swept { &all[..] } else { &[] };
    let figures = super::figures::draw(&groups, points, &out.join("figures"))?;
    let _ = writeln!(md, "\n## Figures\n");
    for (file, caption) in &figures {
        let _ = writeln!(md, "![{caption}](figures/{file})\n");
    }
    let _ = writeln!(md, "## How it was made\n");
    if let Some(r) = &record {
        let _ = writeln!(md, "```sh\n{}\n```\n", r.command);
        if let Some(cfg) = &r.file {
            let _ = writeln!(
                md,
                "Configuration ({}):\n\n```toml\n{}```\n",
                cfg.origin, cfg.text
            );
        }
    }
    let _ = writeln!(
        md,
        "Each run's resolved configuration (seed, threads and every rule knob) is its `config.toml`."
    );
    fs::write(out.join("report.md"), md)
        .with_context(|| format!("cannot write {}/report.md", out.display()))?;
    fs::write(out.join("report.csv"), csv)
        .with_context(|| format!("cannot write {}/report.csv", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::OutputLayerRule;

    /// A run of backprop with seed `seed` whose epochs ended at these test errors; `finished`
    /// or stopped (`failed.txt`).
    fn run(seed: u64, test_errs: &[f64], finished: bool) -> Run {
        let epochs = test_errs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let eval = format!(r#"{{"loss":1.0,"top1_err":{e},"top5_err":null}}"#);
                let rec = format!(
                    r#"{{"epoch":{},"lr":0.1,"train":{eval},"val":null,"test":{eval},"layers":[],"seconds":60.0,"images_per_s":100.0}}"#,
                    i + 1
                );
                serde_json::from_str(&rec).unwrap()
            })
            .collect();
        Run {
            dir: PathBuf::from(format!("bp-s{seed}")),
            cfg: TrainConfig {
                seed,
                ..Default::default()
            },
            epochs,
            probes: Vec::new(),
            finished,
            warmup_seconds: None,
            failed: (!finished).then(|| "diverged at epoch 2".to_string()),
            provenance: None,
        }
    }

    fn column(key: &str) -> &'static Column {
        COLUMNS.iter().find(|c| c.key == key).unwrap()
    }

    /// A run that stopped contributes its epochs and time, but not its last epoch as a final
    /// result: the final columns are the finished runs' alone.
    #[test]
    fn a_stopped_run_is_not_averaged_into_the_final_columns() {
        let runs = [run(0, &[0.5, 0.2], true), run(1, &[0.6, 0.9], false)];
        let g = &groups(&runs, &[])[0];
        assert_eq!(g.runs.len(), 2);
        assert_eq!(values(g, column("final_test_top1_err_pct")), [20.0]);
        assert_eq!(values(g, column("best_test_top1_err_pct")), [20.0, 60.0]);
        assert_eq!(values(g, column("epochs")), [2.0, 2.0]);
        assert_eq!(run_states(g), "1 finished, 1 stopped (see Runs)");
    }

    /// Each cell is the mean first epoch at which the row's finished runs reached the column's
    /// mean final error; runs that never did are counted out, a stopped run is not a row's run.
    #[test]
    fn epochs_to_reach_counts_each_rows_finished_runs_against_each_columns_final_error() {
        let fa = |seed, errs: &[f64], finished| {
            let mut r = run(seed, errs, finished);
            r.cfg.rule = RuleKind::FeedbackAlignment;
            r
        };
        let runs = [
            run(0, &[0.5, 0.3, 0.2], true),
            run(1, &[0.6, 0.35, 0.28], true),
            fa(0, &[0.4, 0.3], true),
            fa(1, &[0.3, 0.3], true),
            fa(2, &[0.1], false),
        ];
        let md = epochs_to_reach(&groups(&runs, &[]));
        assert!(
            md.contains(
                "| row \\ column (final err) | backprop (24.00 %) | feedback-alignment (30.00 %) |"
            ),
            "{md}"
        );
        assert!(md.contains("| backprop | 3.0 (1 of 2) | 2.5 |"), "{md}");
        assert!(md.contains("| feedback-alignment | – | 1.5 |"), "{md}");
        let alone = epochs_to_reach(&groups(&runs[..2], &[]));
        assert!(alone.contains("Fewer than two rules"), "{alone}");
    }

    /// A rule whose every run stopped is listed in the figures' legend with its reason, not as
    /// an entry that drew nothing.
    #[test]
    fn a_rule_that_stopped_is_listed_with_its_reason_in_the_figures() {
        let mut stopped = run(1, &[0.6], false);
        stopped.cfg.rule = RuleKind::FeedbackAlignment;
        let runs = [run(0, &[0.5, 0.2], true), stopped];
        let all = groups(&runs, &[]);
        let dir = tempfile::tempdir().unwrap();
        super::super::figures::draw(&all, &[], dir.path()).unwrap();
        for fig in ["test_error.svg", "train_loss.svg", "depth.svg"] {
            let svg = fs::read_to_string(dir.path().join(fig)).unwrap();
            assert_eq!(
                svg.matches("stopped: diverged at epoch 2").count(),
                1,
                "{fig}"
            );
            assert_eq!(
                svg.matches("stopped:").count(),
                1,
                "{fig}: only the stopped rule"
            );
        }
    }

    /// Of a sweep's points the one with the lowest validation error is kept; a run at another
    /// configuration that is not a sweep key (here the output layer's rule) keeps its own row
    /// beside it, and without a sweep every configuration is shown.
    #[test]
    fn only_a_sweeps_points_compete_for_a_row() {
        let at = |lr: f64, val: f64, output: OutputLayerRule| {
            let mut r = run(0, &[0.3], true);
            r.cfg.lr = lr;
            r.cfg.output_layer_rule = output;
            r.epochs[0].val = r.epochs[0].train.clone().into();
            r.epochs[0].val.as_mut().unwrap().top1_err = val;
            r
        };
        let same = OutputLayerRule::Same;
        let runs = [
            at(0.1, 0.4, same),
            at(0.01, 0.2, same),
            at(0.1, 0.1, OutputLayerRule::Backprop),
        ];
        let all = groups(&runs, &[]);
        let titles = |gs: Vec<Group>| gs.iter().map(|g| g.setting.clone()).collect::<Vec<_>>();
        let kept = titles(chosen(&all, &["lr".to_string()], &[]));
        assert_eq!(
            kept,
            [
                "lr=0.01, output_layer_rule=\"same\"",
                "lr=0.1, output_layer_rule=\"backprop\""
            ]
        );
        assert_eq!(titles(chosen(&all, &[], &[])).len(), 3);
    }

    /// With `--grid-seeds` the point is chosen on those seeds' runs alone: the chosen point's
    /// other seeds (trained there only) cannot move the choice, and the sweep table says so.
    #[test]
    fn a_sweep_chooses_on_its_grid_seeds_only() {
        let at = |lr: f64, seed: u64, val: f64| {
            let mut r = run(seed, &[0.3], true);
            r.cfg.lr = lr;
            r.epochs[0].val = r.epochs[0].train.clone().into();
            r.epochs[0].val.as_mut().unwrap().top1_err = val;
            r
        };
        // Seed 0: lr 0.01 is better; its seed 1, run because it was chosen, is worse than
        // lr 0.1's seed 0.
        let runs = [at(0.1, 0, 0.3), at(0.01, 0, 0.2), at(0.01, 1, 0.5)];
        let all = groups(&runs, &[]);
        let kept = |seeds: &[u64]| chosen(&all, &["lr".to_string()], seeds)[0].setting.clone();
        assert_eq!(kept(&[0]), "lr=0.01");
        assert_eq!(kept(&[]), "lr=0.1", "over every seed the mean moves");
        let shown = chosen(&all, &["lr".to_string()], &[0]);
        let table = sweep_table(&all, &shown, &[0]);
        assert!(
            table.contains("chose on seed 0 (`--grid-seeds`)"),
            "{table}"
        );
        assert!(
            table.contains("| backprop | lr=0.01 | 0,1 | 20.00 |"),
            "{table}"
        );
    }

    /// A rule with runs at one point of a sweep so far is named by the sweep's keys like the
    /// others, in the kept rows and the sweep table; without a sweep only what differs names.
    #[test]
    fn a_rule_at_one_point_of_a_sweep_is_named_by_the_sweeps_keys() {
        let at = |rule: RuleKind, lr: f64| {
            let mut r = run(0, &[0.3], true);
            r.cfg.rule = rule;
            r.cfg.lr = lr;
            r.epochs[0].val = r.epochs[0].train.clone().into();
            r
        };
        let fa = RuleKind::FeedbackAlignment;
        let runs = [
            at(RuleKind::Backprop, 0.1),
            at(RuleKind::Backprop, 0.01),
            at(fa, 0.1),
        ];
        let sweep = ["lr".to_string()];
        let all = groups(&runs, &sweep);
        let shown = chosen(&all, &sweep, &[0]);
        assert_eq!(shown[1].title(), "feedback-alignment (lr=0.1)");
        let table = sweep_table(&all, &shown, &[0]);
        assert!(
            table.contains("| feedback-alignment | lr=0.1 | 0 | 30.00 |"),
            "{table}"
        );
        let plain = groups(&runs, &[]);
        assert_eq!(plain[2].title(), "feedback-alignment");
        assert_eq!(plain[0].title(), "backprop (lr=0.01)");
    }

    /// A chosen point at which a seed stopped keeps its row, and the rule's next point by
    /// validation whose runs at the chosen-on seeds all finished is kept beside it, marked
    /// stable; a point whose own seed-0 run stopped is passed over for it; with every seed
    /// finished there is no second row.
    #[test]
    fn a_chosen_point_that_stopped_a_seed_keeps_its_stable_point_beside_it() {
        let at = |lr: f64, seed: u64, val: f64, finished: bool| {
            let mut r = run(seed, &[0.3], finished);
            r.cfg.lr = lr;
            r.epochs[0].val = r.epochs[0].train.clone().into();
            r.epochs[0].val.as_mut().unwrap().top1_err = val;
            r
        };
        // Seed 0 ranks lr 0.1 (its run stopped after its lowest epoch), 0.01, 0.003, 0.001;
        // lr 0.01's seed 1 stops.
        let runs = |seed1_finishes: bool| {
            vec![
                at(0.1, 0, 0.1, false),
                at(0.01, 0, 0.2, true),
                at(0.003, 0, 0.3, true),
                at(0.001, 0, 0.4, true),
                at(0.01, 1, 0.2, seed1_finishes),
            ]
        };
        let sweep = ["lr".to_string()];
        let kept = |runs: &[Run]| -> Vec<String> {
            chosen(&groups(runs, &sweep), &sweep, &[0])
                .iter()
                .map(Group::title)
                .collect()
        };
        // lr 0.1 is chosen and stopped at seed 0: its stable point is lr 0.01.
        assert_eq!(
            kept(&runs(true)),
            ["backprop (lr=0.01, stable)", "backprop (lr=0.1)"]
        );
        let mut r = runs(false);
        r[0].epochs[0].val.as_mut().unwrap().top1_err = 0.25;
        // lr 0.01 chosen, its seed 1 stopped: lr 0.003 kept beside it (lr 0.1, next on
        // validation, stopped at seed 0).
        assert_eq!(
            kept(&r),
            ["backprop (lr=0.003, stable)", "backprop (lr=0.01)"]
        );
        let table = sweep_table(
            &groups(&r, &sweep),
            &chosen(&groups(&r, &sweep), &sweep, &[0]),
            &[0],
        );
        assert!(
            table.contains("| backprop | lr=0.003 | 0 | 30.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| backprop | lr=0.1 | 0 | 25.00 |"),
            "{table}"
        );
        assert!(table.contains("| ✓ stable |"), "{table}");
        let mut r = runs(true);
        r.remove(0);
        assert_eq!(kept(&r), ["backprop (lr=0.01)"]);
    }
}
