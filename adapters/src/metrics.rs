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

/// The metric names, one declaration each (what each counts: its help in [`ALL`]).
pub mod name {
    pub const CONNECTIONS_OPENED: &str = "ConnectionsOpened";
    pub const CONNECTIONS_CLOSED: &str = "ConnectionsClosed";
    pub const CONNECTIONS_REFUSED: &str = "ConnectionsRefused";
    pub const MESSAGES: &str = "Messages";
    pub const MESSAGES_REFUSED: &str = "MessagesRefused";
    pub const RECIPIENTS: &str = "Recipients";
    pub const POSTS_DELIVERED: &str = "PostsDelivered";
    pub const POSTS_GONE: &str = "PostsGone";
    pub const POSTS_FAILED: &str = "PostsFailed";
    pub const POSTS_MISCONFIGURED: &str = "PostsMisconfigured";
    pub const POSTS_THROTTLED: &str = "PostsThrottled";
    pub const POSTS_RETRIED: &str = "PostsRetried";
    pub const POSTS_REQUEUED: &str = "PostsRequeued";
    pub const POST_CONNECTIONS_OPENED_AHEAD: &str = "PostConnectionsOpenedAhead";
    pub const DELIVERY_GIVEN_UP: &str = "DeliveryGivenUp";
    pub const DELIVERY_DEAD_LETTERED: &str = "DeliveryDeadLettered";
    pub const FANOUT_DURATION: &str = "FanOutDuration";
    pub const AUTHORIZER_DECISIONS: &str = "AuthorizerDecisions";
    pub const AUTHORIZER_REFUSALS: &str = "AuthorizerRefusals";
    pub const COLD_STARTS: &str = "ColdStarts";
    pub const DELIVERY_JOBS: &str = "DeliveryJobs";
    pub const DELIVERY_JOBS_FAILED: &str = "DeliveryJobsFailed";
    pub const DELIVERY_CONTINUATIONS: &str = "DeliveryContinuations";
    pub const SESSION_CONTROLS: &str = "SessionControls";
    pub const SESSIONS_CLOSED: &str = "SessionsClosed";
    pub const LIFECYCLE_EVENTS_FAILED: &str = "LifecycleEventsFailed";
}

/// The dimension (label) names, one declaration each.
pub mod dimension {
    pub const ACTION: &str = "Action";
    pub const ERROR_CODE: &str = "ErrorCode";
    pub const DECISION: &str = "Decision";
    pub const REASON: &str = "Reason";
    pub const FUNCTION: &str = "Function";
    pub const CONTROL: &str = "Control";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    /// Every value kept: CloudWatch computes percentiles, Prometheus shows a summary.
    Histogram,
}

/// One metric: its name, kind, unit and one line of help (what it counts; Prometheus prints it).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

impl Metric {
    const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Counter,
            unit: Unit::Count,
            help,
        }
    }

    const fn histogram(name: &'static str, unit: Unit, help: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Histogram,
            unit,
            help,
        }
    }
}

/// Every metric, for exporters that want them up front (the local gateway's `/metrics` lists
/// every one from the start) and for what each means.
pub const ALL: &[Metric] = &[
    Metric::counter(
        name::CONNECTIONS_OPENED,
        "WebSockets whose $connect the handler accepted.",
    ),
    Metric::counter(
        name::CONNECTIONS_CLOSED,
        "WebSockets whose $disconnect the handler ran.",
    ),
    Metric::counter(
        name::CONNECTIONS_REFUSED,
        "$connect refused by the handler itself (no principal where one is required, or the on_connect hook).",
    ),
    Metric::counter(name::MESSAGES, "Messages whose action ran, by Action."),
    Metric::counter(
        name::MESSAGES_REFUSED,
        "Messages answered with an error frame, by ErrorCode.",
    ),
    Metric::histogram(
        name::RECIPIENTS,
        Unit::Count,
        "Recipients of one message's fan-out, by Action.",
    ),
    Metric::counter(
        name::POSTS_DELIVERED,
        "@connections posts that reached their connection.",
    ),
    Metric::counter(
        name::POSTS_GONE,
        "@connections posts answered 410: the connection was gone, and is pruned.",
    ),
    Metric::counter(
        name::POSTS_FAILED,
        "@connections posts that failed after their retries.",
    ),
    Metric::counter(
        name::POSTS_MISCONFIGURED,
        "Failed posts no retry can fix (403, 413): a deployment fault.",
    ),
    Metric::counter(
        name::POSTS_THROTTLED,
        "@connections answers of 429, retried or not.",
    ),
    Metric::counter(
        name::POSTS_RETRIED,
        "@connections posts tried again after a throttle or a transient error.",
    ),
    Metric::counter(
        name::POSTS_REQUEUED,
        "Recipients handed back to the queue for a later try (throttled or failing past their retries, or out of time).",
    ),
    Metric::counter(
        name::POST_CONNECTIONS_OPENED_AHEAD,
        "@connections connections opened ahead of a fan-out's posts, while it read a page or queued the rest (a cold or shrunken pool).",
    ),
    Metric::counter(
        name::DELIVERY_GIVEN_UP,
        "Recipients given up on after every hand-over: dead-lettered with their job (alarmed).",
    ),
    Metric::counter(
        name::DELIVERY_DEAD_LETTERED,
        "Queue messages set aside at once: malformed, unframable, a backend job setting what only the service may, or too late (alarmed).",
    ),
    Metric::histogram(
        name::FANOUT_DURATION,
        Unit::Milliseconds,
        "How long a message that reached recipients took to handle, fan-out included, by Action.",
    ),
    Metric::counter(
        name::AUTHORIZER_DECISIONS,
        "The $connect authorizer's answers, by Decision.",
    ),
    Metric::counter(
        name::AUTHORIZER_REFUSALS,
        "The authorizer's refusals and errors, by Reason.",
    ),
    Metric::counter(
        name::COLD_STARTS,
        "First invocations of a Lambda instance, by Function.",
    ),
    Metric::counter(
        name::DELIVERY_JOBS,
        "Delivery jobs the fan-out workers received (one per queue message).",
    ),
    Metric::counter(
        name::DELIVERY_JOBS_FAILED,
        "Delivery jobs that failed, malformed ones included: redelivered, then dead-lettered.",
    ),
    Metric::counter(
        name::DELIVERY_CONTINUATIONS,
        "Jobs a worker enqueued for the rest of an audience (the next page, or what its deadline left).",
    ),
    Metric::counter(
        name::SESSION_CONTROLS,
        "A backend's control messages carried out, by Control (kicked, banned, unban, forget).",
    ),
    Metric::counter(
        name::SESSIONS_CLOSED,
        "Sockets the service closed after a closing frame, by Reason (kicked, banned, token_expired).",
    ),
    Metric::counter(
        name::LIFECYCLE_EVENTS_FAILED,
        "Lifecycle events that could not be published (the client's action went on; alarmed).",
    ),
];

/// Tells the installed recorder each metric's unit (CloudWatch shows and converts by it) and
/// help (Prometheus prints it).
pub fn describe() {
    for metric in ALL {
        let Metric {
            name, unit, help, ..
        } = *metric;
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// A socket whose token expired, closed after its `closing` frame.
fn session_expired() {
    counter!(
        name::SESSIONS_CLOSED,
        dimension::REASON => domain::sessions::ClosingCode::TokenExpired.as_str()
    )
    .increment(1);
}

/// A lifecycle event that could not be published.
pub fn lifecycle_event_failed() {
    counter!(name::LIFECYCLE_EVENTS_FAILED).increment(1);
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
    // The service closes a socket whose token expired right after this refusal.
    if code == ErrorCode::TokenExpired {
        session_expired();
    }
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
        (name::POSTS_REQUEUED, report.requeued),
        (name::DELIVERY_GIVEN_UP, report.given_up),
    ];
    for (metric, count) in counts {
        if count > 0 {
            counter!(metric).increment(count);
        }
    }
}

/// Connections the `@connections` client opened ahead of a fan-out's posts.
pub fn record_post_connections_ahead(opened: usize) {
    if opened > 0 {
        counter!(name::POST_CONNECTIONS_OPENED_AHEAD).increment(opened as u64);
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
    if let Some(control) = report.control {
        counter!(name::SESSION_CONTROLS, dimension::CONTROL => control).increment(1);
        // A forget closes with `kicked`; the other controls close with their own code.
        let reason = match control {
            domain::delivery::worker::CONTROL_FORGET => {
                domain::sessions::ClosingCode::Kicked.as_str()
            }
            other => other,
        };
        if report.closed > 0 {
            counter!(name::SESSIONS_CLOSED, dimension::REASON => reason).increment(report.closed);
        }
    }
    delivery_continuations(u64::from(report.continued) + report.handed_over as u64);
    if report.dead_lettered.is_some() {
        counter!(name::DELIVERY_DEAD_LETTERED).increment(1);
    }
}

/// Continuation jobs one worker run enqueued.
pub fn delivery_continuations(count: u64) {
    if count > 0 {
        counter!(name::DELIVERY_CONTINUATIONS).increment(count);
    }
}
