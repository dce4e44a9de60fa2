//! Command-line flags, each with an environment variable. Defaults come from [`Limits`], so
//! `--help` and the library agree.

use std::net::IpAddr;
use std::time::Duration;

use adapters::apigateway::NotifierClient;
use clap::Parser;
use domain::Settings;

use crate::Limits;
use crate::browser_safety::BrowserPolicy;

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
    /// Seconds a client has to send a complete request head (the WebSocket handshake included).
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
    /// An origin, besides the gateway's own page, whose pages may open a WebSocket
    /// (`http://localhost:5173`); repeat it for more, `*` for any. Others get 403.
    #[arg(long, env = "LOCAL_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origin: Vec<String>,
    /// How replies reach sockets: `http` posts to this gateway's own @connections API through the
    /// real ApiGatewayNotifier, as in AWS; `in-process` skips the HTTP hop (faster under load).
    #[arg(long, env = "LOCAL_GATEWAY_NOTIFIER", value_enum, default_value_t = NotifierKind::Http)]
    pub notifier: NotifierKind,
    /// With `--notifier http`: the @connections client, as the Lambdas' `NOTIFIER_CLIENT`:
    /// `signed` (hyper + aws-sigv4, their default) or `sdk` (aws-sdk-apigatewaymanagement).
    #[arg(long, env = "NOTIFIER_CLIENT", default_value_t = NotifierClient::default())]
    pub notifier_client: NotifierClient,
    /// Presence events only for rooms of at most this many members; 0 turns presence off
    /// (the Lambdas' PRESENCE_MAX_MEMBERS).
    #[arg(long, env = "PRESENCE_MAX_MEMBERS", default_value_t = Settings::default().presence_max_members as u64, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    pub presence_max_members: u64,
    /// Messages a second one connection may send (`ping`, `whoami` excepted), as the Lambdas'
    /// `RATE_LIMIT_PER_SECOND`; 0 (the default here, where load tests flood) turns the limit off.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 0)]
    pub rate_limit_per_second: u32,
    /// Messages one connection may send at once after a quiet spell; 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 0)]
    pub rate_limit_burst: u32,
    /// Delivery workers on the in-memory queue, as the `fanout` Lambda's concurrency: a
    /// broadcast past --inline-recipients is handed to them, and `POST /{stage}/@publish` feeds
    /// them. 0 turns queued delivery off (every broadcast inline, no @publish).
    #[arg(long, env = "LOCAL_GATEWAY_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub workers: u64,
    /// Recipients a sendmessage or publish posts to in the sender's invocation before the rest
    /// is queued (the Lambdas' INLINE_RECIPIENTS).
    #[arg(long, env = "INLINE_RECIPIENTS", default_value_t = Settings::default().inline_recipients as u64, value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub inline_recipients: u64,
    /// Deliver through this SQS queue instead of the in-memory one: the handler and @publish
    /// send jobs to it, the workers poll it as a Lambda event source mapping would (the queue's
    /// redrive policy dead-letters). With --sqs-endpoint for moto; real AWS otherwise.
    #[arg(long, env = "DELIVERY_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// The SQS endpoint for --queue-url (moto: http://127.0.0.1:5000).
    #[arg(long, env = "SQS_ENDPOINT", requires = "queue_url")]
    pub sqs_endpoint: Option<String>,
    /// A worker invocation's simulated deadline, in milliseconds (the `fanout` Lambda's
    /// timeout): a job still running then is cut off and redelivered.
    #[arg(long, env = "LOCAL_GATEWAY_JOB_DEADLINE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=900_000))]
    pub job_deadline_ms: u64,
    /// How long before its deadline a worker stops starting posts and hands the rest over (the
    /// Lambdas' JOB_SAFETY_MARGIN_MS). Must be below --job-deadline-ms; below 5 000 (one HTTP
    /// post's time budget and the enqueue) a slow post can outlast the deadline and have its job
    /// cut off and redelivered, which the in-process notifier makes unlikely.
    #[arg(long, env = "JOB_SAFETY_MARGIN_MS", default_value_t = Settings::default().job_safety_margin.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub job_safety_margin_ms: u64,
    /// Use a DynamoDB-compatible server (moto, DynamoDB Local) instead of the in-memory store.
    #[arg(long, env = "LOCAL_GATEWAY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// The table to use with --dynamodb-endpoint; created when missing.
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = "connections-local")]
    pub table: String,
    /// Turn the authorizer on with an HS256 secret (at least 32 bytes); clients then connect with
    /// `?token=<JWT>`.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Turn the authorizer on with the keys of a JWKS document (RS256/ES256).
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Cognito access tokens (no `aud`): the app client id their `client_id` must name.
    #[arg(long, env = "JWT_CLIENT_ID")]
    pub jwt_client_id: Option<String>,
    /// Print an HS256 token for this subject, signed with --jwt-secret and valid for an hour, then exit.
    #[arg(long, value_name = "SUBJECT")]
    pub mint_token: Option<String>,
    /// With --mint-token: the private rooms the token grants, as its `rooms` claim
    /// (comma-separated names or `prefix*` patterns, e.g. `team-42:*`).
    #[arg(long, value_name = "PATTERNS", requires = "mint_token")]
    pub mint_rooms: Option<String>,
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
        }
    }

    pub fn job_deadline(&self) -> Duration {
        Duration::from_millis(self.job_deadline_ms)
    }

    pub fn job_safety_margin(&self) -> Duration {
        Duration::from_millis(self.job_safety_margin_ms)
    }

    /// A margin at or past the deadline would hand every job back untouched, forever.
    pub fn check_delivery(&self) -> Result<(), String> {
        if self.workers == 0 && self.queue_url.is_some() {
            return Err("--queue-url needs workers to poll it (--workers 1 or more)".to_owned());
        }
        if self.workers > 0 && self.job_safety_margin_ms >= self.job_deadline_ms {
            return Err(format!(
                "--job-safety-margin-ms ({}) must be below --job-deadline-ms ({})",
                self.job_safety_margin_ms, self.job_deadline_ms
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
