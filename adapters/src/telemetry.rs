//! Logging: JSON lines for Lambda, with the fields of every enclosing span (the invocation's
//! `lambdaRequestId`, the event's `connectionId`, `routeKey` and API Gateway `requestId`), so
//! CloudWatch Logs Insights can filter on them; human-readable text for the local gateway.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// For Lambda. CloudWatch stamps each line, so no timestamp of our own.
pub fn init_json() {
    let _ = json_subscriber(filter(), std::io::stdout).try_init();
}

/// The Lambda log format, writing to `writer`: every line carries the list of its spans, not only
/// the innermost one, or a line logged inside the handler's span would lose the invocation's
/// request id that the outer span holds.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(writer)
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .without_time()
        .with_target(false)
        .finish()
}

/// For a terminal.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .try_init();
}
