//! Typed errors. Each names the file, key or value that is wrong and what is wrong with it.

use std::path::PathBuf;

/// Everything the library can report to its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data file was read but its contents are wrong.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid {key}: {msg}")]
    Config { key: String, msg: String },
    /// A name (rule, model, dataset, ...) that nowt does not know.
    #[error("unknown {what} '{name}' (expected one of: {choices})")]
    UnknownName {
        what: &'static str,
        name: String,
        choices: String,
    },
    /// Training produced a non-finite loss.
    #[error(
        "training diverged: non-finite loss at {}, step {step}; non-finite values first appeared in {origin} (try a smaller learning rate)",
        phase(*epoch)
    )]
    NonFinite {
        /// The epoch, or 0 for noise pre-training.
        epoch: usize,
        step: usize,
        origin: String,
    },
    /// The loss or a layer's weights grew past the configured bounds.
    #[error(
        "training diverged at epoch {epoch}, step {step}: {what} (try a smaller learning rate; --allow-divergence turns this check off)"
    )]
    Diverged {
        epoch: usize,
        step: usize,
        what: String,
    },
    /// A checkpoint could not be used.
    #[error("{}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn config(key: &str, msg: impl Into<String>) -> Self {
        Error::Config {
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}

/// Where in a run a step lies: `epoch N`, or noise pre-training for epoch 0.
fn phase(epoch: usize) -> String {
    if epoch == 0 {
        "noise pre-training".into()
    } else {
        format!("epoch {epoch}")
    }
}
