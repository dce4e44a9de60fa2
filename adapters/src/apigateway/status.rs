//! One status table for every `@connections` client: the SDK-based notifier and the signed one
//! map their failures here, so both answer the domain the same way.

use domain::NotifyError;

/// How a call to `@connections` failed, before any client's own error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// API Gateway (or something in front of it) answered with this non-2xx status.
    Status(u16),
    /// The request could not even be built or signed (bad endpoint, no credentials).
    NotSent,
    /// No answer: connection refused or reset, a timeout, a dropped connection.
    NoAnswer,
}

/// By HTTP status first: some servers answer 410 with an empty body, which the SDK cannot model.
/// Every status has a deliberate answer (the table is in `ClientNotifier`'s docs).
pub(crate) fn notify_error(failure: CallFailure, text: String) -> NotifyError {
    match failure {
        CallFailure::Status(410) => NotifyError::Gone,
        CallFailure::Status(413) => NotifyError::PayloadTooLarge,
        CallFailure::Status(429) => NotifyError::Throttled,
        // The server gave up waiting for the request: the next attempt may well get through.
        CallFailure::Status(408) => NotifyError::Transient(text),
        CallFailure::Status(500..=599) => NotifyError::Transient(text),
        // 403 (IAM, wrong stage), 404 (a URL that is no management API: a custom domain without
        // the base path, a proxy), 400 (a request API Gateway refuses: the ids we post to come
        // from API Gateway itself, so this is a bug here, not a client's doing), 401, 3xx and
        // every other status: no retry fixes these, and each one is worth an operator's look.
        CallFailure::Status(_) => NotifyError::Forbidden(text),
        CallFailure::NotSent => NotifyError::Forbidden(text),
        CallFailure::NoAnswer => NotifyError::Transient(text),
    }
}
