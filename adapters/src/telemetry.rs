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

/// What logs show of a principal: the first 12 hex digits of its SHA-256. Enough to tell one
/// user's connections apart in a log search, and never the subject itself (an e-mail address is
/// personal data).
pub fn principal_hash(principal: &domain::Principal) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(principal.as_str().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a connection ended, from a closed set: API Gateway's `disconnectReason` can quote the
/// client's own close description ("Client-side close frame status code '1000' - description
/// '...'"), which must not reach a log.
pub fn disconnect_reason_kind(status_code: Option<i64>, reason: Option<&str>) -> &'static str {
    let reason = reason.unwrap_or_default().to_ascii_lowercase();
    if reason.starts_with("client-side close frame") {
        return "client";
    }
    if reason.contains("idle") {
        return "idle";
    }
    if reason.contains("maximum") || reason.contains("duration") {
        return "max_duration";
    }
    match status_code {
        Some(1000 | 1005) => "client",
        Some(1001) => "going_away",
        Some(1006) => "abnormal",
        Some(1002 | 1003 | 1007 | 1008 | 1009) => "protocol",
        Some(1011) => "server_error",
        None if reason.is_empty() => "unknown",
        _ => "other",
    }
}
