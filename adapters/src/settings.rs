//! Every setting of the service, declared once: its environment variable (and so the local
//! gateway's flag of the same name), what it does, its default and its bounds. The Lambdas read
//! their environment through it ([`crate::config::ServiceConfig`]), the local gateway builds its
//! flags from it (`apps/local-gateway/src/flags.rs`), `docs/configuration.md` is generated from
//! it, and a test holds `infra/serverless.yml`'s environment to it: none of them can disagree.

use std::fmt::Display;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use domain::{RateLimit, Settings};

use crate::config::ConfigError;

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable; the local gateway's flag is its lower-case, dashed form.
    pub name: &'static str,
    pub doc: &'static str,
    pub value: Value,
    pub used_by: UsedBy,
    /// The local gateway's default, when it differs from the Lambdas' (documented beside it).
    pub local_default: Option<&'static str>,
    /// An older name of the local gateway's flag, still accepted.
    pub flag_alias: Option<&'static str>,
}

/// What a setting holds, and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A whole number within `min..=max`.
    Number { min: u64, max: u64, default: u64 },
    /// `true` or `false`.
    Switch { default: bool },
    /// One of `choices`.
    Choice {
        choices: &'static [&'static str],
        default: &'static str,
    },
    /// Free text; required where `default` is `None`.
    Text { default: Option<&'static str> },
    /// Text that must never be shown: `--help` hides what the environment holds.
    Secret,
}

/// Who reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedBy {
    /// The Lambdas only (set by `infra/serverless.yml`).
    Lambdas,
    /// The Lambdas, and the local gateway as a flag of the same name.
    Both,
}

impl Setting {
    /// The local gateway's flag: `INLINE_RECIPIENTS` -> `inline-recipients`.
    pub fn flag(&self) -> String {
        self.name.to_ascii_lowercase().replace('_', "-")
    }

    /// The default where `local` says which side is asking.
    pub fn default_text(&self, local: bool) -> Option<String> {
        if let Some(local_default) = self.local_default.filter(|_| local) {
            return Some(local_default.to_string());
        }
        match self.value {
            Value::Number { default, .. } => Some(default.to_string()),
            Value::Switch { default } => Some(default.to_string()),
            Value::Choice { default, .. } => Some(default.to_string()),
            Value::Text { default } => default.map(str::to_string),
            Value::Secret => None,
        }
    }

    /// The value of this setting from `get`, checked against its declaration; the default when
    /// unset.
    pub fn read(
        &self,
        get: &impl Fn(&str) -> Option<String>,
        local: bool,
    ) -> Result<Option<String>, ConfigError> {
        let Some(raw) = get(self.name).or_else(|| self.default_text(local)) else {
            return Ok(None);
        };
        let invalid = |reason: String| ConfigError::Invalid {
            name: self.name,
            value: raw.clone(),
            reason,
        };
        match self.value {
            Value::Number { min, max, .. } => {
                let within = raw
                    .trim()
                    .parse()
                    .is_ok_and(|n: u64| (min..=max).contains(&n));
                if !within {
                    return Err(invalid(format!(
                        "must be a whole number between {min} and {max}"
                    )));
                }
            }
            Value::Switch { .. } => {
                raw.parse::<bool>().map_err(|e| invalid(e.to_string()))?;
            }
            Value::Choice { choices, .. } => {
                if !choices.contains(&raw.as_str()) {
                    return Err(invalid(format!("must be one of {}", choices.join(", "))));
                }
            }
            Value::Text { .. } | Value::Secret => {}
        }
        Ok(Some(raw))
    }

    /// A number or switch setting's value, parsed (the declaration guarantees it is there).
    pub fn parsed<T>(
        &self,
        get: &impl Fn(&str) -> Option<String>,
        local: bool,
    ) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self
            .read(get, local)?
            .ok_or(ConfigError::Missing(self.name))?;
        raw.trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name: self.name,
                value: raw,
                reason: e.to_string(),
            })
    }
}

const fn number(min: u64, max: u64, default: u64) -> Value {
    Value::Number { min, max, default }
}

/// A setting both sides read with the same default and the same flag name.
const fn shared(name: &'static str, doc: &'static str, value: Value) -> Setting {
    Setting {
        name,
        doc,
        value,
        used_by: UsedBy::Both,
        local_default: None,
        flag_alias: None,
    }
}

/// A setting only the Lambdas read.
const fn lambdas(name: &'static str, doc: &'static str, value: Value) -> Setting {
    Setting {
        name,
        doc,
        value,
        used_by: UsedBy::Lambdas,
        local_default: None,
        flag_alias: None,
    }
}

// --- The Lambdas' and the local gateway's settings ------------------------------------------

/// Each is one open socket: Lambda allows 1 024 file descriptors.
pub const FANOUT_CONCURRENCY: Setting = shared(
    "FANOUT_CONCURRENCY",
    "posts in flight per fan-out",
    number(1, 512, 64),
);

/// A day is far more than any skew, and keeps `expires_at` far from overflowing.
pub const TTL_MARGIN_SECONDS: Setting = shared(
    "TTL_MARGIN_SECONDS",
    "added to API Gateway's 2 h for a connection row's expiry (covers clock skew)",
    number(0, 86_400, 600),
);

/// The rooms live in the connection item's `rooms` set: 99 names of at most 64 bytes stay far
/// under DynamoDB's 400 KB item limit, and a connection with its memberships fits one
/// 100-item transaction.
pub const MAX_ROOMS_PER_CONNECTION: Setting = shared(
    "MAX_ROOMS_PER_CONNECTION",
    "rooms one connection may be in at once",
    number(1, 99, 50),
);

pub const ECHO_TO_SENDER: Setting = shared(
    "ECHO_TO_SENDER",
    "deliver a sendmessage or publish back to its sender too",
    Value::Switch { default: true },
);

/// A chat feature a fork may not want: off, `typing` is refused as an unknown action.
pub const TYPING: Setting = shared(
    "TYPING",
    "the typing action: off, it is refused as unknown_action",
    Value::Switch { default: true },
);

/// Each join or leave in a room of N members costs N posts: past 1 000, churn costs more than
/// presence is worth.
pub const PRESENCE_MAX_MEMBERS: Setting = shared(
    "PRESENCE_MAX_MEMBERS",
    "presence events only for rooms of at most this many members; 0 turns presence off",
    number(0, 1_000, 100),
);

/// Each room message's history item costs a write unit per KB and its storage for this long; a
/// day lets a client that was away overnight catch up (docs/protocol.md, "Room streams").
pub const HISTORY_TTL_SECONDS: Setting = shared(
    "HISTORY_TTL_SECONDS",
    "how long room messages are kept for history and join since; 0 turns history off",
    number(0, 30 * 24 * 3600, 24 * 3600),
);

/// Past 20 000 (about 20 s of CPU at 128 MB) the inline part alone could outrun API Gateway's
/// 29 s.
pub const INLINE_RECIPIENTS: Setting = shared(
    "INLINE_RECIPIENTS",
    "recipients a broadcast posts to in the sender's invocation before the rest is queued; 0 queues every broadcast",
    number(
        0,
        20_000,
        domain::settings::DEFAULT_INLINE_RECIPIENTS as u64,
    ),
);

/// At least one post's whole time budget (the notifier's connect and read timeouts, 1 s + 3 s)
/// plus a second for enqueueing what is left: a post started just before the margin then still
/// ends, and its job with it, before the deadline (a test ties this bound to the timeouts).
pub const JOB_SAFETY_MARGIN_MS: Setting = shared(
    "JOB_SAFETY_MARGIN_MS",
    "a worker starts no post (and no retry) within this of its deadline and hands the rest over",
    number(5_000, 60_000, 5_000),
);

/// The Lambdas limit every connection by default (BENCHMARKS.md, "Rate limit"); the local
/// gateway does not, since load tests there flood on purpose.
pub const RATE_LIMIT_PER_SECOND: Setting = Setting {
    local_default: Some("0"),
    ..shared(
        "RATE_LIMIT_PER_SECOND",
        "messages a second one connection may send (ping and whoami excepted); 0 turns the limit off",
        number(0, 1_000_000, 10),
    )
};

pub const RATE_LIMIT_BURST: Setting = Setting {
    local_default: Some("0"),
    ..shared(
        "RATE_LIMIT_BURST",
        "messages one connection may send at once after a quiet spell; 0 turns the limit off",
        Value::Number {
            min: 0,
            max: 1_000_000,
            default: 20,
        },
    )
};

/// Off by default: each message then costs a read and a write more (BENCHMARKS.md, "Rate
/// limit"). On, a reconnect no longer brings a fresh burst.
pub const RATE_LIMIT_PRINCIPAL_PER_SECOND: Setting = shared(
    "RATE_LIMIT_PRINCIPAL_PER_SECOND",
    "messages a second one principal may send across all its connections and reconnects; 0 turns the limit off",
    number(0, 1_000_000, 0),
);

pub const RATE_LIMIT_PRINCIPAL_BURST: Setting = shared(
    "RATE_LIMIT_PRINCIPAL_BURST",
    "messages one principal may send at once across its connections; 0 turns the limit off",
    number(0, 1_000_000, 0),
);

/// Kept per instance in memory (no I/O): `ping`, `whoami` and malformed frames spend no stored
/// token, but each still costs an invocation and a post.
pub const RATE_LIMIT_UNMETERED_PER_SECOND: Setting = Setting {
    local_default: Some("0"),
    ..shared(
        "RATE_LIMIT_UNMETERED_PER_SECOND",
        "pings, whoamis and malformed frames a second one connection may send (per instance, in memory; past it one rate_limited per wait, the rest dropped unanswered); 0 turns it off",
        number(0, 1_000_000, 5),
    )
};

pub const RATE_LIMIT_UNMETERED_BURST: Setting = Setting {
    local_default: Some("0"),
    ..shared(
        "RATE_LIMIT_UNMETERED_BURST",
        "pings, whoamis and malformed frames one connection may send at once; 0 turns it off",
        number(0, 1_000_000, 20),
    )
};

/// DynamoDB `Limit`: at least one item; a page stops at 1 MB anyway.
pub const PAGE_SIZE: Setting = shared(
    "PAGE_SIZE",
    "DynamoDB query page size",
    number(1, 10_000, 500),
);

/// Every listing reads every shard, one Query each even when empty.
pub const LIST_SHARDS: Setting = shared(
    "LIST_SHARDS",
    "listing partitions of the connections index (ARCHITECTURE.md, \"DynamoDB table\": past ~1 000 connects/s)",
    number(1, 256, 1),
);

pub const NOTIFIER_CLIENT: Setting = shared(
    "NOTIFIER_CLIENT",
    "the @connections client: signed (hyper and its own SigV4) or sdk (aws-sdk-apigatewaymanagement)",
    Value::Choice {
        choices: crate::apigateway::NotifierClient::NAMES,
        default: crate::apigateway::NotifierClient::NAMES[0],
    },
);

/// Only the service's functions may write to it (its queue policy says so): a backend cannot
/// enqueue a job that speaks as a user.
pub const INTERNAL_QUEUE_URL: Setting = shared(
    "INTERNAL_QUEUE_URL",
    "the service's own delivery queue (the rest of large broadcasts, continuations, hand-overs); without one every broadcast is delivered inline (required by fanout)",
    Value::Text { default: None },
);

pub const BACKEND_QUEUE_URL: Setting = Setting {
    flag_alias: Some("queue-url"),
    ..shared(
        "BACKEND_QUEUE_URL",
        "the queue backends publish to (the stack output DeliveryQueueUrl; locally, where @publish puts jobs)",
        Value::Text { default: None },
    )
};

pub const DEAD_LETTER_QUEUE_URL: Setting = shared(
    "DEAD_LETTER_QUEUE_URL",
    "where a worker sets aside what can never be delivered, with its reason (required by fanout)",
    Value::Text { default: None },
);

pub const CONNECTIONS_TABLE: Setting = Setting {
    local_default: Some("connections-local"),
    flag_alias: Some("table"),
    ..shared(
        "CONNECTIONS_TABLE",
        "the DynamoDB table (locally: with --dynamodb-endpoint; created when missing)",
        Value::Text { default: None },
    )
};

// --- Authentication: the authorizer Lambda, and the local gateway's authorizer ---------------

pub const JWKS_URL: Setting = shared(
    "JWKS_URL",
    "turn the authorizer on with the keys of a JWKS document (RS256/ES256: Cognito, Auth0, ...)",
    Value::Text { default: None },
);

pub const JWT_SECRET: Setting = shared(
    "JWT_SECRET",
    "turn the authorizer on with an HS256 secret of at least 32 bytes (used when JWKS_URL is empty)",
    Value::Secret,
);

pub const JWT_ISSUER: Setting = shared(
    "JWT_ISSUER",
    "the iss tokens must have (required with JWKS_URL)",
    Value::Text { default: None },
);

pub const JWT_AUDIENCE: Setting = shared(
    "JWT_AUDIENCE",
    "the aud tokens must have (with JWKS_URL: this or JWT_CLIENT_ID)",
    Value::Text { default: None },
);

pub const JWT_CLIENT_ID: Setting = shared(
    "JWT_CLIENT_ID",
    "Cognito access tokens (no aud): the app client id their client_id must name, with token_use access",
    Value::Text { default: None },
);

/// Minutes would let expired tokens in for minutes.
pub const JWT_LEEWAY_SECONDS: Setting = shared(
    "JWT_LEEWAY_SECONDS",
    "clock skew tolerated on exp and nbf",
    number(0, 300, 30),
);

/// Often enough to see a rotation within a day, not so often that every cold start hammers the
/// identity provider.
pub const JWKS_REFRESH_SECONDS: Setting = shared(
    "JWKS_REFRESH_SECONDS",
    "how often the JWKS is fetched again (and at once for an unknown kid)",
    number(60, 86_400, 3_600),
);

// --- The Lambdas' only ----------------------------------------------------------------------

pub const MANAGEMENT_ENDPOINT: Setting = lambdas(
    "MANAGEMENT_ENDPOINT",
    "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}, or a custom domain with its base path; or API_ID + STAGE + AWS_REGION",
    Value::Text { default: None },
);

pub const API_ID: Setting = lambdas(
    "API_ID",
    "with STAGE and AWS_REGION, builds the management endpoint when MANAGEMENT_ENDPOINT is unset",
    Value::Text { default: None },
);

pub const STAGE: Setting = lambdas(
    "STAGE",
    "with API_ID, builds the management endpoint",
    Value::Text { default: None },
);

pub const AWS_URL_SUFFIX: Setting = lambdas(
    "AWS_URL_SUFFIX",
    "the DNS suffix when the endpoint is built from API_ID (amazonaws.com.cn in cn-* regions, else amazonaws.com)",
    Value::Text { default: None },
);

pub const REQUIRE_PRINCIPAL: Setting = lambdas(
    "REQUIRE_PRINCIPAL",
    "a $connect without an authorizer principal gets 403 (serverless.yml sets it when auth is on)",
    Value::Switch { default: false },
);

/// Lambda does not tell a function its timeout: the stack does, so that a safety margin that
/// leaves no time to work stops the function at start-up instead of handing every job back.
pub const FUNCTION_TIMEOUT_SECONDS: Setting = lambdas(
    "FUNCTION_TIMEOUT_SECONDS",
    "the function's own timeout (serverless.yml sets it): JOB_SAFETY_MARGIN_MS must be below it",
    number(1, 900, 900),
);

pub const METRICS_NAMESPACE: Setting = lambdas(
    "METRICS_NAMESPACE",
    "the CloudWatch namespace of the EMF metrics (serverless.yml: metricsNamespace)",
    Value::Text { default: None },
);

pub const EVENT_BUS_NAME: Setting = lambdas(
    "EVENT_BUS_NAME",
    "the EventBridge bus lifecycle events go to (serverless.yml: lifecycleEvents=on); unset, none are published",
    Value::Text { default: None },
);

pub const EVENT_SOURCE: Setting = lambdas(
    "EVENT_SOURCE",
    "the lifecycle events' source (serverless.yml: the service and stage)",
    Value::Text {
        default: Some("ws-chat"),
    },
);

/// Not ours, but set by `infra/serverless.yml`: listed so that every variable it sets is
/// documented here.
pub const RUST_LOG: Setting = lambdas(
    "RUST_LOG",
    "the log filter (tracing-subscriber's EnvFilter syntax)",
    Value::Text {
        default: Some("info"),
    },
);

pub const SSL_CERT_FILE: Setting = lambdas(
    "SSL_CERT_FILE",
    "the one file the TLS clients read root certificates from (serverless.yml: Amazon Linux's bundle); unset, they read the bundle and the whole certificates directory",
    Value::Text { default: None },
);

/// Every setting, in the order the documentation lists them.
pub const ALL: &[Setting] = &[
    CONNECTIONS_TABLE,
    MANAGEMENT_ENDPOINT,
    API_ID,
    STAGE,
    AWS_URL_SUFFIX,
    REQUIRE_PRINCIPAL,
    FANOUT_CONCURRENCY,
    TTL_MARGIN_SECONDS,
    MAX_ROOMS_PER_CONNECTION,
    ECHO_TO_SENDER,
    TYPING,
    HISTORY_TTL_SECONDS,
    PRESENCE_MAX_MEMBERS,
    RATE_LIMIT_PER_SECOND,
    RATE_LIMIT_BURST,
    RATE_LIMIT_PRINCIPAL_PER_SECOND,
    RATE_LIMIT_PRINCIPAL_BURST,
    RATE_LIMIT_UNMETERED_PER_SECOND,
    RATE_LIMIT_UNMETERED_BURST,
    INLINE_RECIPIENTS,
    JOB_SAFETY_MARGIN_MS,
    PAGE_SIZE,
    LIST_SHARDS,
    NOTIFIER_CLIENT,
    INTERNAL_QUEUE_URL,
    BACKEND_QUEUE_URL,
    DEAD_LETTER_QUEUE_URL,
    JWKS_URL,
    JWT_SECRET,
    JWT_ISSUER,
    JWT_AUDIENCE,
    JWT_CLIENT_ID,
    JWT_LEEWAY_SECONDS,
    JWKS_REFRESH_SECONDS,
    FUNCTION_TIMEOUT_SECONDS,
    METRICS_NAMESPACE,
    EVENT_BUS_NAME,
    EVENT_SOURCE,
    RUST_LOG,
    SSL_CERT_FILE,
];

/// The domain's settings from `get`, as the Lambdas (`local` false) or the local gateway
/// (`local` true) read them: every value checked against its declaration.
pub fn domain_settings(
    get: &impl Fn(&str) -> Option<String>,
    local: bool,
) -> Result<Settings, ConfigError> {
    let defaults = Settings::default();
    let fanout_concurrency: usize = FANOUT_CONCURRENCY.parsed(get, local)?;
    Ok(Settings {
        fanout_concurrency: NonZeroUsize::new(fanout_concurrency)
            .unwrap_or(defaults.fanout_concurrency),
        ttl_margin: Duration::from_secs(TTL_MARGIN_SECONDS.parsed(get, local)?),
        max_rooms_per_connection: MAX_ROOMS_PER_CONNECTION.parsed(get, local)?,
        echo_to_sender: ECHO_TO_SENDER.parsed(get, local)?,
        typing: TYPING.parsed(get, local)?,
        token_leeway: Duration::from_secs(JWT_LEEWAY_SECONDS.parsed(get, local)?),
        history_ttl: Duration::from_secs(HISTORY_TTL_SECONDS.parsed(get, local)?),
        presence_max_members: PRESENCE_MAX_MEMBERS.parsed(get, local)?,
        inline_recipients: INLINE_RECIPIENTS.parsed(get, local)?,
        job_safety_margin: Duration::from_millis(JOB_SAFETY_MARGIN_MS.parsed(get, local)?),
        rate_limit: RateLimit {
            per_second: RATE_LIMIT_PER_SECOND.parsed(get, local)?,
            burst: RATE_LIMIT_BURST.parsed(get, local)?,
        },
        principal_rate_limit: RateLimit {
            per_second: RATE_LIMIT_PRINCIPAL_PER_SECOND.parsed(get, local)?,
            burst: RATE_LIMIT_PRINCIPAL_BURST.parsed(get, local)?,
        },
        unmetered_rate_limit: RateLimit {
            per_second: RATE_LIMIT_UNMETERED_PER_SECOND.parsed(get, local)?,
            burst: RATE_LIMIT_UNMETERED_BURST.parsed(get, local)?,
        },
        ..defaults
    })
}

/// The Markdown table of every setting that `docs/configuration.md` holds between its
/// `settings:` markers: variable, local gateway flag, default, bounds, what it does.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| variable | local gateway flag | default | values | what it does |\n|---|---|---|---|---|\n",
    );
    for setting in ALL {
        let flag = match setting.used_by {
            UsedBy::Both => format!("`--{}`", setting.flag()),
            UsedBy::Lambdas => "(Lambdas only)".to_string(),
        };
        let mut default = setting
            .default_text(false)
            .map_or_else(|| "none".to_string(), |d| format!("`{d}`"));
        if let Some(local) = setting.local_default {
            default.push_str(&format!(" (locally `{local}`)"));
        }
        let values = match setting.value {
            Value::Number { min, max, .. } => format!("{min} to {max}"),
            Value::Switch { .. } => "`true`, `false`".to_string(),
            Value::Choice { choices, .. } => choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Value::Text { .. } => "text".to_string(),
            Value::Secret => "text, never shown".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {flag} | {default} | {values} | {} |\n",
            setting.name,
            setting.doc.replace('|', "\\|")
        ));
    }
    out
}
