//! What a function is and how an invocation fails: what the pool and each instance share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One function, as its CloudFormation resource describes it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    /// The unzipped artifact's `bootstrap`.
    pub bootstrap: PathBuf,
    /// Its environment (the Lambda runtime's own variables are added to it).
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub reserved_concurrency: Option<usize>,
    /// Where its instances' stdout and stderr go, line for line; `None`: discarded.
    pub log_file: Option<PathBuf>,
}

/// Why an invocation did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("no function {0:?} in this deployment")]
    UnknownFunction(String),
    #[error("{function} failed to start: {message}")]
    InitFailed { function: String, message: String },
    /// The handler answered with an error (`/<id>/error`), as Lambda reports a function error.
    #[error("{function} failed: {error_type}: {message}")]
    Failed {
        function: String,
        error_type: String,
        message: String,
    },
    #[error("{function} timed out after {timeout:?}")]
    TimedOut { function: String, timeout: Duration },
    #[error("{function} exited during an invocation: {message}")]
    Crashed { function: String, message: String },
}
