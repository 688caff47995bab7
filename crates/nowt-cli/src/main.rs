//! `nowt`: train networks without weight transport. This file owns argument parsing and exit
//! codes; the work lives in the `nowt` library.

mod args;
mod bench;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Train(a) => run::train(a),
        args::Command::Rules => {
            run::list_rules();
            Ok(())
        }
        args::Command::Bench(a) => bench::bench(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain, outermost first.
            eprintln!("nowt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
