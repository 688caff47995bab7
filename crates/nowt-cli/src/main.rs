//! `nowt`: train networks without weight transport. This file owns argument parsing and exit
//! codes; the work lives in the `nowt` library.

mod args;
mod bench;
mod run;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc keeps freed pages for reuse: the per-step activations and errors (hundreds of KB
/// each) would otherwise be returned to the OS and faulted back in every step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Train(a) => run::train(a),
        args::Command::Rules => {
            run::list_rules();
            Ok(())
        }
        args::Command::Bench(a) => bench::bench(a),
        args::Command::Eval(a) => run::eval(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<run::Interrupted>() => ExitCode::from(130),
        Err(e) => {
            // One line: the context chain, outermost first.
            eprintln!("nowt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
