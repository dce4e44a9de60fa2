//! The local gateway's `GET /metrics` declares every metric the Lambdas send CloudWatch from the
//! start, with its help text and a zero value, and counts what its delivery workers do as the
//! `fanout` Lambda counts it. Its own test binary: the process-wide recorder has seen no traffic
//! when the test starts.

use adapters::metrics::{ALL, Kind, Metric, name};
use serde_json::json;
use tests::client::TestClient;
use tests::gateway_probes::{eventually_async, raw_http};
use tests::publish::post_publish;
use tests::ws::gateway;

async fn metrics(gw: &local_gateway::RunningGateway) -> String {
    let (status, text) = raw_http(
        gw.addr(),
        &format!("GET /metrics HTTP/1.1\r\nHost: {}", gw.addr()),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of the sample `series` (name and labels as Prometheus writes them), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_declared_before_any_traffic_and_the_delivery_workers_count_their_jobs() {
    let gw = gateway(&[]).await;

    let before = metrics(&gw).await;

    for &Metric {
        name: metric, kind, ..
    } in ALL
    {
        let help = format!("# HELP {metric} ");
        let line = before.lines().find(|l| l.starts_with(&help));
        assert!(
            line.is_some_and(|l| l.len() > help.len() + 10),
            "{metric} has no help line:\n{before}"
        );
        let series = match kind {
            Kind::Counter => metric.to_string(),
            Kind::Histogram => format!("{metric}_count"),
        };
        assert_eq!(
            sample(&before, &series),
            Some(0.0),
            "{series} in:\n{before}"
        );
    }

    let mut reader = TestClient::connect(&gw).await;
    reader.join("lobby").await;
    let delivered_before = sample(&metrics(&gw).await, name::POSTS_DELIVERED).unwrap_or(0.0);
    let (status, answer) = post_publish(
        &gw,
        &["Content-Type: application/json"],
        r#"{"room":"lobby","data":"from a backend"}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let message = reader.next_of_type("message").await;
    assert_eq!(message["data"], json!("from a backend"));

    let after = eventually_async(|| async {
        let text = metrics(&gw).await;
        (sample(&text, name::DELIVERY_JOBS) == Some(1.0)).then_some(text)
    })
    .await
    .expect("DeliveryJobs counts the job within 10 s");
    assert_eq!(sample(&after, name::DELIVERY_JOBS_FAILED), Some(0.0));
    let delivered = sample(&after, name::POSTS_DELIVERED).unwrap_or(0.0);
    assert_eq!(
        delivered - delivered_before,
        1.0,
        "the worker's post:\n{after}"
    );
    reader.close().await;
    gw.shutdown().await;
}
