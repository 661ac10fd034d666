//! The engine's error type. Every message is a sentence a non-programmer can act on: what failed,
//! which file or field, and what to do next (DESIGN.md §5).

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the engine, one variant per failure domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder the user named could not be read or written.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    /// Input data that cannot be used for training or evaluation.
    #[error("{0}")]
    Data(String),

    /// A hyperparameter or option with a value that makes no sense.
    #[error("the setting `{field}` {message}")]
    Config { field: String, message: String },

    /// A folder or file that is not a model we can load.
    #[error("{path} is not a model Tunesmith can load: {message}")]
    Model { path: PathBuf, message: String },

    /// The Hugging Face hub could not be reached or did not have the model.
    #[error("{0}")]
    Hub(String),

    /// A tokenizer could not be loaded, built or trained.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A model that an export format cannot hold, and why.
    #[error("a {format} export cannot hold this model: {message}")]
    Unsupported { format: String, message: String },

    /// The user asked the job to stop.
    #[error("stopped by the user")]
    Cancelled,

    /// A numeric failure inside candle: a bug or an unsupported device, never the user's fault.
    #[error("internal compute error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The engine's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A file error with an explanation of what to do.
    pub fn file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A file error built from an I/O error, with a plain-language reason.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "does not exist; check the path".to_string(),
            std::io::ErrorKind::PermissionDenied => {
                "cannot be opened (permission denied); check its permissions".to_string()
            }
            _ => format!("could not be read or written ({err})"),
        };
        Error::file(path, message)
    }

    /// A configuration error naming the field.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A model loading error naming the path.
    pub fn model(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A short machine-readable kind, used by the CLI's JSON output and the desktop app.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::File { .. } => "file",
            Error::Data(_) => "data",
            Error::Config { .. } => "config",
            Error::Model { .. } => "model",
            Error::Hub(_) => "hub",
            Error::Tokenizer(_) => "tokenizer",
            Error::Unsupported { .. } => "unsupported",
            Error::Cancelled => "cancelled",
            Error::Candle(_) => "internal",
        }
    }
}
