//! The CloudWatch Embedded Metric Format exporter of a Lambda: `metrics_cloudwatch_embedded`'s
//! recorder, flushed by `lambda::measured` after each invocation. Its own `lambda` feature (a
//! tower layer doing the same flush) is left off: it pulls `lambda_http` and a second HTTP stack.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_cloudwatch_embedded::{Builder, Collector};

/// The environment variable naming the CloudWatch namespace (a deployment parameter).
pub const NAMESPACE_VAR: &str = "METRICS_NAMESPACE";

/// The request id goes with the metrics as a property: searchable in the logs, never a dimension.
const REQUEST_ID_PROPERTY: &str = "RequestId";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{NAMESPACE_VAR} is not set: it names the CloudWatch namespace of the metrics")]
    NoNamespace,
    #[error("cannot install the metrics recorder: {0}")]
    Install(String),
}

/// The process's metrics recorder, installed once per Lambda instance.
pub struct LambdaMetrics {
    collector: &'static Collector,
    function: &'static str,
    cold: AtomicBool,
}

impl LambdaMetrics {
    pub fn from_env(function: &'static str) -> Result<Self, MetricsError> {
        let namespace = std::env::var(NAMESPACE_VAR)
            .ok()
            .filter(|n| !n.trim().is_empty())
            .ok_or(MetricsError::NoNamespace)?;
        Self::install(&namespace, function)
    }

    /// Installs the EMF recorder as the process's global one: once per process.
    pub fn install(namespace: &str, function: &'static str) -> Result<Self, MetricsError> {
        let collector = Builder::new()
            .cloudwatch_namespace(namespace.to_string())
            .init()
            .map_err(|e| MetricsError::Install(e.to_string()))?;
        crate::metrics::describe();
        Ok(Self {
            collector,
            function,
            cold: AtomicBool::new(true),
        })
    }

    /// Counts a cold start on the first invocation of this instance.
    pub fn invocation_started(&self) {
        if self.cold.swap(false, Ordering::Relaxed) {
            crate::metrics::cold_start(self.function);
        }
    }

    /// Writes what was recorded since the last flush as EMF lines, in one write so no log line
    /// lands in the middle of them.
    pub fn flush(&self, request_id: &str, mut out: impl Write) -> io::Result<()> {
        let mut lines = Vec::new();
        self.collector
            .set_property(REQUEST_ID_PROPERTY, request_id)
            .flush(&mut lines)?;
        out.write_all(&lines)?;
        out.flush()
    }
}
