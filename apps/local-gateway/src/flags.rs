//! Command-line flags, each with an environment variable. Defaults come from [`Limits`], so
//! `--help` and the library agree.

use std::net::IpAddr;
use std::time::Duration;

use std::collections::BTreeMap;

use adapters::config::ConfigError;
use adapters::settings::{self, Setting, UsedBy, Value};
use clap::{Arg, ArgMatches, Command, Parser};
use domain::Settings;

use crate::browser_safety::BrowserPolicy;
use crate::limits::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifierKind {
    Http,
    InProcess,
}

#[derive(Debug, Parser)]
#[command(about = "A local API Gateway WebSocket emulator running this project's handlers")]
pub struct Options {
    /// The address to listen on. Anything but a loopback address exposes an unauthenticated
    /// @connections API to the network (a warning says so at start-up).
    #[arg(long, env = "LOCAL_GATEWAY_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, env = "LOCAL_GATEWAY_PORT", default_value_t = 3001)]
    pub port: u16,
    /// The stage in the URLs, as in wss://{api}.execute-api.{region}.amazonaws.com/{stage}.
    #[arg(long, env = "LOCAL_GATEWAY_STAGE", default_value = "local", value_parser = stage_name)]
    pub stage: String,
    /// Largest single frame in bytes (API Gateway: 32 KB); a larger one closes the socket with
    /// 1009. A bigger message must come as several frames, as browsers do not send it.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_FRAME_BYTES", default_value_t = Limits::default().max_frame_bytes)]
    pub max_frame_bytes: usize,
    /// Largest message in bytes (API Gateway: 128 KB); larger ones close the socket with 1009.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// Seconds without a message before the socket closes with 1001 (API Gateway: 600).
    #[arg(long, env = "LOCAL_GATEWAY_IDLE_TIMEOUT", default_value_t = Limits::default().idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Seconds a socket may live (API Gateway: 7200).
    #[arg(long, env = "LOCAL_GATEWAY_MAX_CONNECTION", default_value_t = Limits::default().max_connection_duration.as_secs(), value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub max_connection_secs: u64,
    /// `$default` invocations at once, like a Lambda concurrency limit; more messages wait their
    /// turn. `$connect` and `$disconnect` have pools of their own.
    #[arg(long, env = "LOCAL_GATEWAY_CONCURRENCY", default_value_t = Limits::default().max_concurrent_invocations)]
    pub max_concurrent_invocations: usize,
    /// Messages of one socket at the handler at once; at the cap the socket is not read.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight_per_connection)]
    pub max_in_flight_per_connection: usize,
    /// Bytes posted to one socket and not yet written; a post beyond it gets 410 and the socket
    /// closes with 1008.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_OUTBOUND_QUEUE_BYTES", default_value_t = Limits::default().max_outbound_queue_bytes)]
    pub max_outbound_queue_bytes: usize,
    /// Seconds a client has to send a complete request head (the WebSocket handshake included),
    /// and then a body the gateway reads (`@connections`, `@publish`; 408 past it).
    #[arg(
        long,
        env = "LOCAL_GATEWAY_HANDSHAKE_TIMEOUT",
        default_value_t = Limits::default().handshake_timeout.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub handshake_timeout_secs: u64,
    /// WebSockets open at once; one more gets 429.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Plain HTTP connections open at once (a WebSocket counts only until it is upgraded); one
    /// more is refused at once. Open WebSockets have --max-connections.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_HTTP_CONNECTIONS", default_value_t = Limits::default().max_http_connections)]
    pub max_http_connections: usize,
    /// An origin, besides the gateway's own page, whose pages may open a WebSocket
    /// (`http://localhost:5173`); repeat it for more, `*` for any. Others get 403.
    #[arg(long, env = "LOCAL_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origin: Vec<String>,
    /// How replies reach sockets: `http` posts to this gateway's own @connections API through the
    /// real ApiGatewayNotifier, as in AWS; `in-process` skips the HTTP hop (faster under load).
    #[arg(long, env = "LOCAL_GATEWAY_NOTIFIER", value_enum, default_value_t = NotifierKind::Http)]
    pub notifier: NotifierKind,
    /// The inspector's chat view (a chat on the project's own client); `false` for a fork that is
    /// no chat: the inspector then opens no WebSocket of its own.
    #[arg(long, env = "LOCAL_GATEWAY_CHAT_VIEW", default_value_t = true, action = clap::ArgAction::Set)]
    pub chat_view: bool,
    /// Delivery workers on the in-memory queue, as the `fanout` Lambda's concurrency: a
    /// broadcast past --inline-recipients is handed to them, and `POST /{stage}/@publish` feeds
    /// them. 0 turns queued delivery off (every broadcast inline, no @publish).
    #[arg(long, env = "LOCAL_GATEWAY_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub workers: u64,
    /// The SQS endpoint of the queues (moto: http://127.0.0.1:5000).
    #[arg(long, env = "SQS_ENDPOINT")]
    pub sqs_endpoint: Option<String>,
    /// A worker invocation's simulated deadline, in milliseconds (the `fanout` Lambda's
    /// timeout): a job still running then is cut off and redelivered.
    #[arg(long, env = "LOCAL_GATEWAY_JOB_DEADLINE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=900_000))]
    pub job_deadline_ms: u64,
    /// Publishes one room's stream takes a second in memory, past which a publish is refused
    /// with `room_busy`, as DynamoDB throttles one room's items in AWS (about 500 with history on:
    /// docs/protocol.md, "Room streams"). 0: no limit. Ignored with --dynamodb-endpoint.
    #[arg(
        long,
        env = "LOCAL_GATEWAY_ROOM_MAX_PUBLISH_PER_SECOND",
        default_value_t = 500
    )]
    pub room_max_publish_per_second: u32,
    /// Use a DynamoDB-compatible server (moto, DynamoDB Local) instead of the in-memory store.
    #[arg(long, env = "LOCAL_GATEWAY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Run the packaged stack this file describes (`scripts/rehearse` writes it from the
    /// CloudFormation template): each route, the authorizer and the event source mappings invoke
    /// the functions' real `bootstrap` binaries under a Lambda emulator, with the environment the
    /// file gives them. The service settings below then do not apply: the functions read theirs.
    #[arg(long, env = "LOCAL_GATEWAY_DEPLOYMENT", value_name = "FILE")]
    pub deployment: Option<std::path::PathBuf>,
    /// Print an HS256 token for this subject, signed with --jwt-secret (or JWT_SECRET) and valid
    /// for an hour, then exit.
    #[arg(long, value_name = "SUBJECT")]
    pub mint_token: Option<String>,
    /// With --mint-token: the private rooms the token grants, as its `rooms` claim
    /// (comma-separated names or `prefix*` patterns, e.g. `team-42:*`).
    #[arg(long, value_name = "PATTERNS", requires = "mint_token")]
    pub mint_rooms: Option<String>,
    /// With --mint-token: the token's lifetime in seconds, short to try expiry and `reauth` by
    /// hand (the authorizer's leeway, JWT_LEEWAY_SECONDS, still applies)
    #[arg(long, value_name = "SECONDS", requires = "mint_token", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub mint_ttl_secs: u64,
    /// POST every lifecycle event (connected, disconnected, joined, left) to this URL, as JSON in
    /// the EventBridge event's shape (docs/deploying.md, "Lifecycle events")
    #[arg(long, env = "LOCAL_GATEWAY_EVENTS_WEBHOOK", value_name = "URL")]
    pub events_webhook: Option<String>,
    /// The settings the Lambdas read from their environment, as flags of the same names
    /// (`INLINE_RECIPIENTS` is `--inline-recipients`): declared once, in `adapters::settings`.
    #[command(flatten)]
    pub service: ServiceSettings,
}

/// The service settings the local gateway shares with the Lambdas (`adapters::settings`), each a
/// flag named after its environment variable, with that variable as its fallback.
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings(BTreeMap<&'static str, String>);

impl ServiceSettings {
    /// The shared settings, in `adapters::settings::ALL` order.
    fn declared() -> impl Iterator<Item = &'static Setting> {
        settings::ALL
            .iter()
            .filter(|setting| setting.used_by == UsedBy::Both)
    }

    /// What was given for the setting named `name` (its flag or its variable), if anything.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// The domain's settings, each checked against its declaration.
    pub fn domain(&self) -> Result<Settings, ConfigError> {
        settings::domain_settings(&|name| self.get(name), true)
    }

    /// A number or switch, parsed; its local default when unset.
    pub fn parsed<T>(&self, setting: &Setting) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        setting.parsed(&|name| self.get(name), true)
    }

    /// A text setting, when given.
    pub fn text(&self, setting: &Setting) -> Option<String> {
        self.get(setting.name)
            .filter(|value| !value.trim().is_empty())
    }
}

fn arg_for(setting: &'static Setting) -> Arg {
    // Flags are built once, at start-up: leaking their names costs a few bytes.
    let long: &'static str = Box::leak(setting.flag().into_boxed_str());
    let mut help = setting.doc.to_string();
    if let Some(local) = setting.local_default {
        help.push_str(&format!(
            " [Lambdas' default: {}; here: {local}]",
            setting.default_text(false).unwrap_or_default()
        ));
    }
    let mut arg = Arg::new(setting.name)
        .long(long)
        .env(setting.name)
        .help(help)
        .value_name(match setting.value {
            Value::Number { .. } => "N",
            Value::Switch { .. } => "true|false",
            _ => "VALUE",
        })
        .hide_env_values(setting.value == Value::Secret)
        .value_parser(move |raw: &str| {
            setting
                .read(&|_| Some(raw.to_string()), true)
                .map(|value| value.unwrap_or_default())
                .map_err(|e| e.to_string())
        });
    if let Some(default) = setting.default_text(true) {
        arg = arg.default_value(&*Box::leak(default.into_boxed_str()));
    }
    if let Some(alias) = setting.flag_alias {
        arg = arg.alias(alias);
    }
    arg
}

impl clap::FromArgMatches for ServiceSettings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let values = Self::declared()
            .filter_map(|setting| {
                let value = matches.get_one::<String>(setting.name)?;
                Some((setting.name, value.clone()))
            })
            .collect();
        Ok(Self(values))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ServiceSettings {
    fn augment_args(command: Command) -> Command {
        Self::declared().fold(command, |command, setting| command.arg(arg_for(setting)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl Options {
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_message_bytes: self.max_message_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connection_duration: Duration::from_secs(self.max_connection_secs),
            max_concurrent_invocations: self.max_concurrent_invocations,
            max_in_flight_per_connection: self.max_in_flight_per_connection,
            max_outbound_queue_bytes: self.max_outbound_queue_bytes,
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            max_connections: self.max_connections,
            max_http_connections: self.max_http_connections,
        }
    }

    pub fn job_deadline(&self) -> Duration {
        Duration::from_millis(self.job_deadline_ms)
    }

    /// The service's own queue's URL, when the gateway delivers through SQS.
    pub fn queue_url(&self) -> Option<String> {
        self.service.text(&settings::INTERNAL_QUEUE_URL)
    }

    /// A margin at or past the deadline would hand every job back untouched, forever.
    pub fn check_delivery(&self, settings: &Settings) -> Result<(), String> {
        if self.workers == 0 && self.queue_url().is_some() {
            return Err(
                "--internal-queue-url needs workers to poll it (--workers 1 or more)".to_owned(),
            );
        }
        if self.sqs_endpoint.is_some() && self.queue_url().is_none() {
            return Err("--sqs-endpoint needs --internal-queue-url".to_owned());
        }
        let margin = settings.job_safety_margin;
        if self.workers > 0 && margin >= self.job_deadline() {
            return Err(format!(
                "--job-safety-margin-ms ({}) must be below --job-deadline-ms ({})",
                margin.as_millis(),
                self.job_deadline_ms
            ));
        }
        Ok(())
    }

    pub fn browser_policy(&self) -> BrowserPolicy {
        BrowserPolicy {
            allowed_origins: self.allowed_origin.clone(),
        }
    }
}

/// API Gateway's stage names: 1-128 of `[A-Za-z0-9_-]`. The name goes into URLs and the chat
/// page, so nothing else gets in.
fn stage_name(raw: &str) -> Result<String, String> {
    let valid = (1..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        Err("a stage is 1-128 letters, digits, '_' or '-'".into())
    } else if raw == "metrics" {
        // `GET /metrics` is the gateway's own: the stage's WebSocket URL would never be reached.
        Err("the stage 'metrics' is taken by GET /metrics; pick another".into())
    } else if raw == "inspector" {
        Err("the stage 'inspector' is taken by the inspector page; pick another".into())
    } else {
        Ok(raw.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_follow_api_gateway_rules() {
        assert!(stage_name("dev_2-a").is_ok());
        for bad in [
            "",
            "a/b",
            "a\"",
            "é",
            &"x".repeat(129),
            "metrics",
            "inspector",
        ] {
            assert!(stage_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn with_no_flags_the_limits_are_api_gateway_s() {
        let options = Options::try_parse_from(["local-gateway"]).unwrap();

        let limits = options.limits();

        assert_eq!(limits.max_frame_bytes, 32 * 1024);
        assert_eq!(limits.max_message_bytes, 128 * 1024);
        assert_eq!(limits.idle_timeout, Duration::from_secs(600));
        assert_eq!(limits.max_connection_duration, Duration::from_secs(7200));
    }
}
