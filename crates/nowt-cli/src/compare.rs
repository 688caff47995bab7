//! `nowt compare`: the library's comparison ([`nowt::compare`]) from the command line — rules
//! with `--rules`, seeds with `--seeds`, a sweep with `--grid` (chosen on `--grid-seeds`), the
//! config as `nowt train`'s flags — shown with one progress bar per run.

use anyhow::{bail, Result};
use nowt::compare::{Ended, Note, Spec};
use nowt::train::ControlFlow;

use crate::args::{CompareArgs, TrainArgs};
use crate::run::{self, RunOpts, Shown};

pub fn compare(a: CompareArgs) -> Result<()> {
    let t = &a.train;
    if t.rule.is_some() || t.seed.is_some() || t.resume.is_some() {
        bail!("nowt compare: give rules with --rules and seeds with --seeds (not --rule, --seed or --resume)");
    }
    // Each rule and seed once, in the order given.
    let mut rules = a.rules.clone();
    let mut seen = std::collections::HashSet::new();
    rules.retain(|r| seen.insert(*r));
    let mut seeds = a.seeds.clone();
    let mut seen = std::collections::HashSet::new();
    seeds.retain(|s| seen.insert(*s));
    let file = run::config_file(t)?;
    let spec = Spec {
        file: file.as_ref(),
        rules,
        seeds,
        grid: a.grid.clone(),
        grid_seeds: a.grid_seeds.clone(),
        out: t.out.clone(),
        preset: t.preset.clone(),
    };
    let base = |rule, seed| {
        run::resolve(&TrainArgs {
            rule: Some(rule),
            seed: Some(seed),
            out: None,
            ..t.clone()
        })
    };
    let opts = RunOpts::of(t);
    let mut shown: Option<Shown> = None;
    // The run `shown` shows: a new one gets its own bar and label from its first event (its
    // warm-up, if its rule has one, comes before it starts).
    let mut current = String::new();
    let mut on = |note: Note| match note {
        Note::Line(line) => {
            if let Some(s) = &shown {
                s.bar.finish_and_clear();
            }
            errln!("nowt compare: {line}");
            ControlFlow::Continue(())
        }
        Note::Run { label, progress } => {
            if label != current {
                if let Some(s) = &shown {
                    s.bar.finish_and_clear();
                }
                current = label.to_string();
                shown = Some(Shown::new(&opts, 0, format!("[{label}] ")));
            }
            match shown.as_mut() {
                Some(s) => s.on(progress),
                None => ControlFlow::Continue(()),
            }
        }
    };
    let ended = nowt::compare::compare(&spec, &base, &opts.run, crate::world::get(), &mut on);
    if let Some(s) = &shown {
        s.bar.finish_and_clear();
    }
    match ended? {
        Ended::Done(out) => {
            if crate::world::leads() {
                errln!(
                    "nowt compare: report in {}",
                    out.join("report.md").display()
                );
            }
            Ok(())
        }
        Ended::Stopped(_) => Err(run::interrupted()),
    }
}

/// `nowt report`: the report of run directories, its path printed.
pub fn report(a: crate::args::ReportArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.dirs[0].clone());
    nowt::compare::report::write_report(&a.dirs, &out)?;
    outln!("{}", out.join("report.md").display());
    Ok(())
}
