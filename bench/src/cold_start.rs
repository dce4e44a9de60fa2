//! Cold start of the release `default` Lambda: process start -> first `next` request, and -> first
//! response, over many starts, under the local gateway's Lambda emulator (the rehearsal's). The handler builds every SDK
//! client, then handles one of two first events:
//! - `ping`: it posts a `pong` to a local `@connections` route and calls no AWS service;
//! - `join`: it reads the connection from DynamoDB first (a local endpoint over plain http that
//!   finds nothing), so the SDK's HTTP client builds its connector, and reads the root
//!   certificates, inside the measured time, then posts the `not_connected` error.
//!
//! Both are run alternately in one invocation, so their figures compare.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use local_gateway::lambda;
use serde_json::json;

use crate::{endpoint_stub, stats};

/// The first event a fresh process handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FirstEvent {
    Ping,
    Join,
}

impl FirstEvent {
    fn body(self) -> &'static str {
        match self {
            FirstEvent::Ping => r#"{"action":"ping","requestId":"1"}"#,
            FirstEvent::Join => r#"{"action":"join","room":"lobby","requestId":"1"}"#,
        }
    }

    /// The name `--event` takes.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The scenario means something only if the event did (or did not) reach DynamoDB.
    fn check(self, dynamodb_calls: usize) -> Result<(), String> {
        match (self, dynamodb_calls) {
            (FirstEvent::Ping, 0) => Ok(()),
            (FirstEvent::Join, 1..) => Ok(()),
            (event, calls) => Err(format!(
                "a first {} made {calls} DynamoDB calls: the scenario no longer measures what it says",
                event.name()
            )),
        }
    }
}

fn event(first: FirstEvent) -> serde_json::Value {
    json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "L0SM9cOFvHcCIhw=",
            "connectedAt": 1_700_000_000_000u64, "requestTimeEpoch": 1_700_000_000_100u64,
            "requestId": "bench", "apiId": "bench", "stage": "bench", "domainName": "localhost",
            "identity": {"sourceIp": "127.0.0.1"}
        },
        "body": first.body(),
        "isBase64Encoded": false
    })
}

pub struct Start {
    pub to_next: Duration,
    pub to_response: Duration,
    pub peak_rss_kib: u64,
}

pub async fn start_once(
    binary: &Path,
    first: FirstEvent,
    ssl_cert_file: Option<&Path>,
) -> Result<Start, String> {
    let endpoints = endpoint_stub::start().await;
    let mut environment: BTreeMap<String, String> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("METRICS_NAMESPACE", "bench"),
        ("CONNECTIONS_TABLE", "bench"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    environment.insert(
        "MANAGEMENT_ENDPOINT".into(),
        format!("http://{}/bench", endpoints.addr),
    );
    environment.insert(
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        format!("http://{}", endpoints.addr),
    );
    if let Some(file) = ssl_cert_file {
        environment.insert("SSL_CERT_FILE".into(), file.display().to_string());
    }
    let spec = lambda::FunctionSpec {
        name: "default".into(),
        bootstrap: binary.to_path_buf(),
        environment,
        timeout: Duration::from_secs(10),
        memory_mb: 128,
        reserved_concurrency: Some(1),
        log_file: None,
    };
    // The emulator waits for the process without polling: a poll loop here took CPU from the
    // start it measures.
    let started = Instant::now();
    let mut instance = lambda::Instance::start(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let to_next = instance.init_time();
    instance
        .invoke("bench-request-1", &event(first), spec.timeout)
        .await
        .map_err(|e| format!("the function answered with an error: {e}"))?;
    let to_response = started.elapsed();
    // The kernel's high-water mark, read once while the process lives: the peak up to the answer.
    let peak = instance
        .pid()
        .and_then(stats::rss_kib)
        .map_or(0, |(_, hwm)| hwm);
    drop(instance);
    first.check(endpoints.dynamodb_calls())?;
    Ok(Start {
        to_next,
        to_response,
        peak_rss_kib: peak,
    })
}

/// What one kind of first event measured over its starts.
#[derive(Default)]
struct Starts {
    next: Vec<Duration>,
    response: Vec<Duration>,
    peaks: Vec<u64>,
}

impl Starts {
    fn add(&mut self, start: Start) {
        self.next.push(start.to_next);
        self.response.push(start.to_response);
        self.peaks.push(start.peak_rss_kib);
    }

    fn rows(&mut self, event: FirstEvent) -> Vec<Vec<String>> {
        self.next.sort();
        self.response.sort();
        self.peaks.sort();
        let peak = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        let row = |measure: &str, times: &[Duration]| {
            vec![
                event.name(),
                measure.to_string(),
                stats::ms(stats::percentile(times, 50.0)),
                stats::ms(stats::percentile(times, 95.0)),
                stats::ms(*times.last().unwrap_or(&Duration::ZERO)),
                peak(self.peaks.get(self.peaks.len() / 2).copied().unwrap_or(0)),
                peak(*self.peaks.last().unwrap_or(&0)),
            ]
        };
        vec![
            row("start -> first /next", &self.next),
            row("start -> first response", &self.response),
        ]
    }
}

/// `starts` starts of each event, alternating, so that a change in the machine's load during the
/// run falls on both.
pub async fn run(
    binary: &Path,
    events: &[FirstEvent],
    starts: usize,
    ssl_cert_file: Option<&Path>,
) -> Result<(), String> {
    let mut measured: Vec<Starts> = events.iter().map(|_| Starts::default()).collect();
    for _ in 0..starts {
        for (event, into) in events.iter().zip(&mut measured) {
            into.add(start_once(binary, *event, ssl_cert_file).await?);
        }
    }
    println!(
        "cold start of {} over {starts} starts of each first event (SDK clients built; endpoints \
         local; SSL_CERT_FILE {:?})\n",
        binary.display(),
        ssl_cert_file
    );
    let rows = events
        .iter()
        .zip(&mut measured)
        .flat_map(|(event, starts)| starts.rows(*event))
        .collect::<Vec<_>>();
    stats::table(
        &[
            "event",
            "measure",
            "p50 ms",
            "p95 ms",
            "max ms",
            "peak RSS MiB, median",
            "max",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FirstEvent;

    #[test]
    fn a_ping_must_not_reach_dynamodb_and_a_join_must() {
        assert!(FirstEvent::Ping.check(0).is_ok());
        assert!(FirstEvent::Ping.check(1).is_err());
        assert!(FirstEvent::Join.check(2).is_ok());
        assert!(FirstEvent::Join.check(0).is_err());
    }
}
