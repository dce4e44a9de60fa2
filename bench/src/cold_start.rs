//! Cold start of the release `default` Lambda: process start -> first `next` request, and -> first
//! response, over many starts, against a local Runtime API stub. The event is a `ping` message,
//! so the handler builds every SDK client and posts a `pong` to a local `@connections` route.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{runtime_stub, stats};

fn ping_event() -> serde_json::Value {
    json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "L0SM9cOFvHcCIhw=",
            "connectedAt": 1_700_000_000_000u64, "requestTimeEpoch": 1_700_000_000_100u64,
            "requestId": "bench", "apiId": "bench", "stage": "bench", "domainName": "localhost",
            "identity": {"sourceIp": "127.0.0.1"}
        },
        "body": "{\"action\":\"ping\",\"requestId\":\"1\"}",
        "isBase64Encoded": false
    })
}

pub struct Start {
    pub to_next: Duration,
    pub to_response: Duration,
    pub peak_rss_kib: u64,
}

pub async fn start_once(binary: &Path, ssl_cert_file: Option<&Path>) -> Result<Start, String> {
    let stub = runtime_stub::start(ping_event()).await;
    let mut command = tokio::process::Command::new(binary);
    command.env_clear();
    if let Some(file) = ssl_cert_file {
        command.env("SSL_CERT_FILE", file);
    }
    let started = Instant::now();
    let mut child = command
        .env("AWS_LAMBDA_RUNTIME_API", &stub.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "default")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("METRICS_NAMESPACE", "bench")
        .env("CONNECTIONS_TABLE", "bench")
        .env("MANAGEMENT_ENDPOINT", format!("http://{}/bench", stub.addr))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut peak = 0;
    let limit = Instant::now() + Duration::from_secs(10);
    let marks = loop {
        let marks = stub.marks();
        if let Some((_, hwm)) = stats::rss_kib(pid) {
            peak = peak.max(hwm);
        }
        if marks.response.is_some() || marks.error.is_some() {
            break marks;
        }
        if Instant::now() > limit {
            return Err("no response within 10 s".into());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    if let Some((_, hwm)) = stats::rss_kib(pid) {
        peak = peak.max(hwm);
    }
    let _ = child.kill().await;
    if marks.error.is_some() {
        return Err("the function answered with an error".into());
    }
    Ok(Start {
        to_next: marks.first_next.expect("next came first") - started,
        to_response: marks.response.expect("response") - started,
        peak_rss_kib: peak,
    })
}

pub async fn run(binary: &Path, starts: usize, ssl_cert_file: Option<&Path>) -> Result<(), String> {
    let mut next = Vec::new();
    let mut response = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..starts {
        let s = start_once(binary, ssl_cert_file).await?;
        next.push(s.to_next);
        response.push(s.to_response);
        peaks.push(s.peak_rss_kib);
    }
    next.sort();
    response.sort();
    peaks.sort();
    println!(
        "cold start of {} over {starts} starts (event: ping; SDK clients built; endpoints local; SSL_CERT_FILE {:?})\n",
        binary.display(),
        ssl_cert_file
    );
    stats::table(
        &["measure", "p50 ms", "p95 ms", "max ms"],
        &[
            vec![
                "start -> first /next".into(),
                stats::ms(stats::percentile(&next, 50.0)),
                stats::ms(stats::percentile(&next, 95.0)),
                stats::ms(*next.last().unwrap_or(&Duration::ZERO)),
            ],
            vec![
                "start -> first response".into(),
                stats::ms(stats::percentile(&response, 50.0)),
                stats::ms(stats::percentile(&response, 95.0)),
                stats::ms(*response.last().unwrap_or(&Duration::ZERO)),
            ],
        ],
    );
    println!(
        "\npeak RSS of one invocation: median {:.1} MiB, max {:.1} MiB",
        peaks[peaks.len() / 2] as f64 / 1024.0,
        *peaks.last().unwrap_or(&0) as f64 / 1024.0
    );
    Ok(())
}
