//! What the per-connection rate limit adds to each message, against a DynamoDB-compatible server:
//! latency of `handle_message` with the limit off, on and letting messages through, and on and
//! refusing them, and the DynamoDB requests each message made, counted by an SDK interceptor (so
//! SDK retries would be counted too).

use std::collections::BTreeMap;
use std::time::Instant;

use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::wiring;
use domain::{
    ClientNotifier, ConnectionId, ConnectionRepository, NotifyError, RateLimit, Sender, Settings,
};

use crate::{dynamo_requests, stats};

/// Accepts every post at once: only the store's share of the time is measured.
struct NullNotifier;

#[async_trait::async_trait]
impl ClientNotifier for NullNotifier {
    async fn send(&self, _to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

const MODES: [(&str, RateLimit); 3] = [
    ("off", RateLimit::OFF),
    (
        "on, every message let through",
        RateLimit {
            per_second: 1_000_000,
            burst: 1_000_000,
        },
    ),
    (
        "on, refusing (1/s, burst 1)",
        RateLimit {
            per_second: 1,
            burst: 1,
        },
    ),
];

pub async fn run(endpoint: &str, messages: usize, runs: usize) -> Result<(), String> {
    let (client, counter) = dynamo_requests::counted_client(endpoint).await;
    let body = br#"{"action":"sendmessage","data":{"text":"hello"}}"#;
    let mut rows = Vec::new();
    for (name, limit) in MODES {
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        let mut requests = BTreeMap::new();
        for run in 0..runs {
            let table = format!("bench-rate-limit-{}-{run}", std::process::id());
            create_table_if_missing(&client, &table)
                .await
                .map_err(|e| e.to_string())?;
            let repo = DynamoConnectionRepository::new(client.clone(), DynamoSettings::new(&table));
            let connection = crate::forever("bench");
            repo.save(&connection).await.map_err(|e| e.to_string())?;
            let settings = Settings {
                rate_limit: limit,
                ..Settings::default()
            };
            let service = wiring::service(repo, NullNotifier, settings);
            let sender = Sender::new(connection.id, None);
            counter.take();
            let mut latencies = Vec::with_capacity(messages);
            for _ in 0..messages {
                let started = Instant::now();
                service
                    .handle_message(&sender, body)
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(started.elapsed());
            }
            requests = counter.take();
            latencies.sort();
            p50s.push(stats::percentile(&latencies, 50.0));
            p99s.push(stats::percentile(&latencies, 99.0));
            client
                .delete_table()
                .table_name(&table)
                .send()
                .await
                .map_err(|e| e.to_string())?;
        }
        let per_message = |op: &str| {
            let n = requests.get(op).copied().unwrap_or(0);
            format!("{:.2}", n as f64 / messages as f64)
        };
        rows.push(vec![
            name.to_string(),
            stats::ms(stats::median(p50s)),
            stats::ms(stats::median(p99s)),
            per_message("GetItem"),
            per_message("UpdateItem"),
            per_message("Query"),
        ]);
    }
    println!("{messages} sendmessage to a table of 1 connection, median of {runs} runs\n");
    stats::table(
        &[
            "rate limit",
            "p50 ms / message",
            "p99 ms / message",
            "GetItem / message",
            "UpdateItem / message",
            "Query / message",
        ],
        &rows,
    );
    Ok(())
}
