//! The error every command returns: a serialisable `{kind, message}` the page shows as it is.

use serde::Serialize;

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandError {
    /// `file`, `data`, `config`, `model`, `hub`, `tokenizer`, `cancelled`, `internal` (from the
    /// engine), or `busy` (another job is running).
    pub kind: String,
    /// A sentence for the user: what failed and what to do.
    pub message: String,
}

impl CommandError {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        CommandError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl CommandError {
    pub fn from_engine(e: &tunesmith_engine::Error) -> Self {
        CommandError::new(e.kind(), e.to_string())
    }
}

impl From<tunesmith_engine::Error> for CommandError {
    fn from(e: tunesmith_engine::Error) -> Self {
        CommandError::from_engine(&e)
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
