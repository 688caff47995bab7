//! `nowt`: train networks without weight transport. This file owns argument parsing and exit
//! codes; the work lives in the `nowt` library.

/// `println!`, `print!` and `eprintln!` that never panic: a closed stdout or stderr (`nowt … |
/// head`, a killed `tee`, a dropped ssh session) stops the output, not the run.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
        let _ = std::io::stdout().flush();
    }};
}
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod args;
mod bench;
mod compare;
mod run;
mod world;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc keeps freed pages for reuse: the per-step activations and errors (hundreds of KB
/// each) would otherwise be returned to the OS and faulted back in every step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 headers alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Never hand freed memory back to the OS while training: a step frees and reallocates the
    // same activations, and purging them made the kernel zero ≈ 23,000 pages per 11 ResNet-20
    // steps (`perf stat`: 23,397 page faults vs 512; 443 → 422 ms/step). Peak memory is
    // unchanged: it is the same activations.
    // SAFETY: sets a process-wide allocator option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    world::init();
    let cli = args::Cli::parse();
    if let Err(e) = world::refuse_ranks_without_mpi() {
        errln!("nowt: error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        args::Command::Train(a) => run::train(a),
        args::Command::Rules => {
            run::list_rules();
            Ok(())
        }
        args::Command::Bench(a) => bench::bench(a),
        args::Command::Eval(a) => run::eval(a),
        args::Command::Compare(a) => compare::compare(*a),
        args::Command::Report(a) => compare::report(a),
        args::Command::Presets(a) => run::presets(a.show.as_deref()),
        args::Command::Models(a) => run::models(a),
        args::Command::Check(a) => run::check(a),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<run::Interrupted>() => {
            ExitCode::from(e.downcast_ref::<run::Interrupted>().map_or(130, |i| i.0))
        }
        Err(e) => {
            // One line (every rank ends with it when there are several).
            let line = one_line(&e);
            world::fail_all(&line);
            errln!("nowt: error: {line}");
            ExitCode::FAILURE
        }
    };
    world::finish();
    code
}

/// The error's context chain on one line, outermost first, leaving out a cause whose text the
/// line already holds (a message that quotes its OS error would otherwise print it twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line += ": ";
        }
        line += &text;
    }
    line
}
