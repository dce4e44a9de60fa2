//! What the service counts, recorded through the `metrics` facade: the Lambdas export it as
//! CloudWatch Embedded Metric Format (`adapters::lambda`), the local gateway as Prometheus text.
//! `domain` stays free of it: its use cases return reports, and this module records them.
//!
//! Every name is declared once, here, so CloudWatch, the alarms in `infra/serverless.yml` and the
//! local gateway's `/metrics` agree. Dimensions stay low-cardinality, from closed sets only: an
//! action, an error code, an authorizer decision and reason, a function. Never a connection id,
//! a room or a principal: each distinct value is a billed CloudWatch metric.

use std::time::Duration;

use domain::DeliveryReport;
use domain::protocol::ErrorCode;
use metrics::{Unit, counter, histogram};

/// The metric names, one declaration each.
pub mod name {
    pub const CONNECTIONS_OPENED: &str = "ConnectionsOpened";
    pub const CONNECTIONS_CLOSED: &str = "ConnectionsClosed";
    /// `$connect` refused by the handler itself (no principal where one is required).
    pub const CONNECTIONS_REFUSED: &str = "ConnectionsRefused";
    /// Messages whose action ran, by `Action`.
    pub const MESSAGES: &str = "Messages";
    /// Messages refused with an `error` frame, by `ErrorCode`.
    pub const MESSAGES_REFUSED: &str = "MessagesRefused";
    /// Recipients of one message's fan-out, by `Action`.
    pub const RECIPIENTS: &str = "Recipients";
    pub const POSTS_DELIVERED: &str = "PostsDelivered";
    pub const POSTS_GONE: &str = "PostsGone";
    pub const POSTS_FAILED: &str = "PostsFailed";
    /// The part of `PostsFailed` no retry can fix (403, 413): a deploy fault.
    pub const POSTS_MISCONFIGURED: &str = "PostsMisconfigured";
    /// `@connections` answers of 429, retried or not.
    pub const POSTS_THROTTLED: &str = "PostsThrottled";
    pub const POSTS_RETRIED: &str = "PostsRetried";
    /// How long a message that reached recipients took to handle, fan-out included, by `Action`.
    pub const FANOUT_DURATION: &str = "FanOutDuration";
    /// `$connect` authorizer answers, by `Decision` (what alarms watch).
    pub const AUTHORIZER_DECISIONS: &str = "AuthorizerDecisions";
    /// The authorizer's refusals and errors, by `Reason` (what a dashboard breaks down): a second
    /// metric rather than two dimensions on one, since an alarm cannot sum over a dimension.
    pub const AUTHORIZER_REFUSALS: &str = "AuthorizerRefusals";
    /// First invocation of a Lambda instance, by `Function`.
    pub const COLD_STARTS: &str = "ColdStarts";
    /// Delivery jobs the fan-out received (one per SQS message).
    pub const DELIVERY_JOBS: &str = "DeliveryJobs";
    /// Delivery jobs that failed (malformed included): SQS redelivers them, then dead-letters them.
    pub const DELIVERY_JOBS_FAILED: &str = "DeliveryJobsFailed";
    /// Jobs a worker enqueued for the rest of an audience (the next page, or what its deadline
    /// left undone).
    pub const DELIVERY_CONTINUATIONS: &str = "DeliveryContinuations";
}

/// The dimension (label) names, one declaration each.
pub mod dimension {
    pub const ACTION: &str = "Action";
    pub const ERROR_CODE: &str = "ErrorCode";
    pub const DECISION: &str = "Decision";
    pub const REASON: &str = "Reason";
    pub const FUNCTION: &str = "Function";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    /// Every value kept: CloudWatch computes percentiles, Prometheus shows a summary.
    Histogram,
}

/// Every metric, its kind, its unit and one line of help, for exporters that want them up front
/// (the local gateway's `/metrics` lists every one from the start).
pub const ALL: &[(&str, Kind, Unit, &str)] = &[
    (
        name::CONNECTIONS_OPENED,
        Kind::Counter,
        Unit::Count,
        "WebSockets whose $connect the handler accepted.",
    ),
    (
        name::CONNECTIONS_CLOSED,
        Kind::Counter,
        Unit::Count,
        "WebSockets whose $disconnect the handler ran.",
    ),
    (
        name::CONNECTIONS_REFUSED,
        Kind::Counter,
        Unit::Count,
        "$connect refused by the handler itself (no principal where one is required).",
    ),
    (
        name::MESSAGES,
        Kind::Counter,
        Unit::Count,
        "Messages whose action ran, by Action.",
    ),
    (
        name::MESSAGES_REFUSED,
        Kind::Counter,
        Unit::Count,
        "Messages answered with an error frame, by ErrorCode.",
    ),
    (
        name::RECIPIENTS,
        Kind::Histogram,
        Unit::Count,
        "Recipients of one message's fan-out, by Action.",
    ),
    (
        name::POSTS_DELIVERED,
        Kind::Counter,
        Unit::Count,
        "@connections posts that reached their connection.",
    ),
    (
        name::POSTS_GONE,
        Kind::Counter,
        Unit::Count,
        "@connections posts answered 410: the connection was gone, and is pruned.",
    ),
    (
        name::POSTS_FAILED,
        Kind::Counter,
        Unit::Count,
        "@connections posts that failed after their retries.",
    ),
    (
        name::POSTS_MISCONFIGURED,
        Kind::Counter,
        Unit::Count,
        "Failed posts no retry can fix (403, 413): a deployment fault.",
    ),
    (
        name::POSTS_THROTTLED,
        Kind::Counter,
        Unit::Count,
        "@connections answers of 429, retried or not.",
    ),
    (
        name::POSTS_RETRIED,
        Kind::Counter,
        Unit::Count,
        "@connections posts tried again after a throttle or a transient error.",
    ),
    (
        name::FANOUT_DURATION,
        Kind::Histogram,
        Unit::Milliseconds,
        "How long a message that reached recipients took to handle, fan-out included, by Action.",
    ),
    (
        name::AUTHORIZER_DECISIONS,
        Kind::Counter,
        Unit::Count,
        "The $connect authorizer's answers, by Decision.",
    ),
    (
        name::AUTHORIZER_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "The authorizer's refusals and errors, by Reason.",
    ),
    (
        name::COLD_STARTS,
        Kind::Counter,
        Unit::Count,
        "First invocations of a Lambda instance, by Function.",
    ),
    (
        name::DELIVERY_JOBS,
        Kind::Counter,
        Unit::Count,
        "Delivery jobs the fan-out workers received (one per queue message).",
    ),
    (
        name::DELIVERY_JOBS_FAILED,
        Kind::Counter,
        Unit::Count,
        "Delivery jobs that failed, malformed ones included: redelivered, then dead-lettered.",
    ),
    (
        name::DELIVERY_CONTINUATIONS,
        Kind::Counter,
        Unit::Count,
        "Jobs a worker enqueued for the rest of an audience (the next page, or what its deadline left).",
    ),
];

/// Tells the installed recorder each metric's unit (CloudWatch shows and converts by it) and
/// help (Prometheus prints it).
pub fn describe() {
    for &(metric, kind, unit, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(metric, unit, help),
            Kind::Histogram => metrics::describe_histogram!(metric, unit, help),
        }
    }
}

pub fn connection_opened() {
    counter!(name::CONNECTIONS_OPENED).increment(1);
}

pub fn connection_closed() {
    counter!(name::CONNECTIONS_CLOSED).increment(1);
}

pub fn connection_refused() {
    counter!(name::CONNECTIONS_REFUSED).increment(1);
}

pub fn message_refused(code: ErrorCode) {
    counter!(name::MESSAGES_REFUSED, dimension::ERROR_CODE => code.as_str()).increment(1);
}

/// One message whose action ran: `action` comes from the domain's closed set of actions.
pub fn message_handled(action: &'static str, report: &DeliveryReport, took: Duration) {
    counter!(name::MESSAGES, dimension::ACTION => action).increment(1);
    let recipients = report.recipients();
    if recipients > 0 {
        histogram!(name::RECIPIENTS, dimension::ACTION => action).record(recipients as f64);
        histogram!(name::FANOUT_DURATION, dimension::ACTION => action)
            .record(took.as_secs_f64() * 1000.0);
    }
    posts(report);
}

/// The posts of a fan-out; zero counts are skipped so idle metrics cost nothing.
fn posts(report: &DeliveryReport) {
    let counts = [
        (name::POSTS_DELIVERED, report.delivered),
        (name::POSTS_GONE, report.gone),
        (name::POSTS_FAILED, report.failed),
        (name::POSTS_MISCONFIGURED, report.misconfigured),
        (name::POSTS_THROTTLED, report.throttled),
        (name::POSTS_RETRIED, report.retried),
    ];
    for (metric, count) in counts {
        if count > 0 {
            counter!(metric).increment(count);
        }
    }
}

/// What the authorizer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403: a bad token.
    Deny,
    /// 401: no token, or an expired one.
    Unauthorized,
    /// 500: the keys could not be had, or the event was malformed.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Unauthorized => "unauthorized",
            Decision::Error => "error",
        }
    }
}

/// The reason for a malformed authorizer event.
pub const REASON_BAD_EVENT: &str = "bad_event";

pub fn authorizer_allowed() {
    counter!(name::AUTHORIZER_DECISIONS, dimension::DECISION => Decision::Allow.as_str())
        .increment(1);
}

/// `reason` is `REASON_BAD_EVENT` or a `TokenError::kind()`: closed sets.
pub fn authorizer_refused(decision: Decision, reason: &'static str) {
    counter!(name::AUTHORIZER_DECISIONS, dimension::DECISION => decision.as_str()).increment(1);
    counter!(name::AUTHORIZER_REFUSALS, dimension::REASON => reason).increment(1);
}

pub fn cold_start(function: &'static str) {
    counter!(name::COLD_STARTS, dimension::FUNCTION => function).increment(1);
}

/// One batch of delivery jobs: how many arrived and how many failed.
pub fn delivery_jobs(jobs: usize, failed: usize) {
    counter!(name::DELIVERY_JOBS).increment(jobs as u64);
    if failed > 0 {
        counter!(name::DELIVERY_JOBS_FAILED).increment(failed as u64);
    }
}

/// One delivery job a worker ran: its posts, and whether it left work for other jobs (the next
/// page, or recipients handed over before the deadline).
pub fn job_done(report: &domain::delivery::JobReport) {
    posts(&report.delivery);
    delivery_continuations(u64::from(report.continued) + u64::from(report.handed_over > 0));
}

/// Continuation jobs one worker run enqueued.
pub fn delivery_continuations(count: u64) {
    if count > 0 {
        counter!(name::DELIVERY_CONTINUATIONS).increment(count);
    }
}
