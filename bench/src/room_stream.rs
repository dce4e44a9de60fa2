//! What room streams cost and sustain, in memory and against a DynamoDB-compatible server:
//!
//! - per room publish, with no stream, with `seq` only (history off) and with history: latency
//!   and the DynamoDB requests it made (counted by an SDK interceptor), and from them the write
//!   units and dollars per million publishes the stream adds;
//! - the highest rate one room sustains: senders publishing to one room as fast as they can, in
//!   memory with no bound and with the local gateway's bound, and on the server;
//! - the time a `join {since}` takes to replay the messages a member missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::dynamodb::{
    DynamoConnectionRepository, DynamoRoomLog, DynamoSettings, create_table_if_missing,
};
use adapters::memory::{InMemoryConnectionRepository, InMemoryRoomLog};
use adapters::wiring;
use domain::stream::{REPLAY_MAX_MESSAGES, RoomLog};
use domain::{
    ClientNotifier, ConnectionId, ConnectionRepository, NotifyError, RateLimit, RoomName, Sender,
    Settings, Timestamp,
};

use crate::dynamo_requests;
use crate::stats;

/// DynamoDB's on-demand price per million write units (us-east-1; BENCHMARKS.md, "Cost model").
const DOLLARS_PER_MILLION_WRITE_UNITS: f64 = 0.625;
/// The local gateway's default `--room-max-publish-per-second`, the bound it simulates in memory.
const LOCAL_ROOM_BOUND: u32 = 500;
const ROOM: &str = "bench";
const PUBLISH: &[u8] = br#"{"action":"publish","room":"bench","data":{"text":"hello room"}}"#;

pub struct Args {
    pub dynamodb_endpoint: Option<String>,
    /// Publishes timed per mode, per run.
    pub messages: usize,
    pub runs: usize,
    /// How long the senders publish in the sustained-rate runs.
    pub seconds: f64,
    /// Senders publishing at once in the sustained-rate runs.
    pub senders: usize,
    /// Messages a member missed before it rejoins (at most the replay's bound).
    pub missed: u64,
}

/// Counts what the service posted, by kind, and keeps nothing.
#[derive(Default)]
struct Frames {
    messages: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
}

fn contains(frame: &[u8], needle: &[u8]) -> bool {
    frame.windows(needle.len()).any(|w| w == needle)
}

#[async_trait::async_trait]
impl ClientNotifier for Frames {
    async fn send(&self, _to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        if contains(frame, br#""type":"message""#) {
            self.messages.fetch_add(1, Ordering::Relaxed);
        } else if contains(frame, br#""room_busy""#) {
            self.busy.fetch_add(1, Ordering::Relaxed);
        } else if contains(frame, br#""type":"error""#) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// What a room's stream keeps.
#[derive(Clone, Copy)]
enum Stream {
    None,
    SeqOnly,
    History,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::None => "no stream",
            Stream::SeqOnly => "seq, history off",
            Stream::History => "seq and history (1 day)",
        }
    }

    fn settings(self) -> Settings {
        Settings {
            rate_limit: RateLimit::OFF,
            history_ttl: match self {
                Stream::History => Duration::from_secs(24 * 3600),
                _ => Duration::ZERO,
            },
            ..Settings::default()
        }
    }
}

type Service = domain::WebSocketService<Arc<dyn ConnectionRepository>, Arc<Frames>>;

/// One fresh store: in memory, or a new table on the server.
enum Store {
    Memory {
        room_bound: RateLimit,
    },
    Dynamo {
        client: aws_sdk_dynamodb::Client,
        table: String,
    },
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Memory { room_bound } if room_bound.is_on() => "memory, the local bound",
            Store::Memory { .. } => "memory, no bound",
            Store::Dynamo { .. } => "DynamoDB (moto)",
        }
    }

    /// The service over this store with `members` connections in the room, what it posted, and
    /// the store.
    async fn service(
        &self,
        stream: Stream,
        members: usize,
    ) -> Result<(Service, Arc<Frames>, Arc<dyn ConnectionRepository>), String> {
        let (repo, log): (Arc<dyn ConnectionRepository>, Arc<dyn RoomLog>) = match self {
            Store::Memory { room_bound } => (
                Arc::new(InMemoryConnectionRepository::default()),
                Arc::new(InMemoryRoomLog::with_room_limit(*room_bound)),
            ),
            Store::Dynamo { client, table } => {
                create_table_if_missing(client, table)
                    .await
                    .map_err(|e| e.to_string())?;
                let settings = DynamoSettings::new(table);
                (
                    Arc::new(DynamoConnectionRepository::new(
                        client.clone(),
                        settings.clone(),
                    )),
                    Arc::new(DynamoRoomLog::new(client.clone(), settings)),
                )
            }
        };
        let room = RoomName::parse(ROOM).map_err(|e| e.to_string())?;
        for i in 0..members {
            let connection = crate::forever(&format!("m{i}"));
            let id = connection.id.clone();
            repo.save(&connection).await.map_err(|e| e.to_string())?;
            repo.join(&id, &room, 50, Timestamp::from_millis(1))
                .await
                .map_err(|e| e.to_string())?;
        }
        let frames = Arc::new(Frames::default());
        let mut service = wiring::service(repo.clone(), frames.clone(), stream.settings());
        if !matches!(stream, Stream::None) {
            service = service.with_room_log(log);
        }
        Ok((service, frames, repo))
    }

    async fn drop_table(&self) -> Result<(), String> {
        if let Store::Dynamo { client, table } = self {
            client
                .delete_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn member(i: usize) -> Sender {
    Sender::new(
        ConnectionId::parse(format!("m{i}")).expect("a valid id"),
        None,
    )
}

pub async fn run(args: Args) -> Result<(), String> {
    let dynamo = match &args.dynamodb_endpoint {
        Some(endpoint) => Some(dynamo_requests::counted_client(endpoint).await),
        None => None,
    };
    let table =
        |what: &str, run: usize| format!("bench-stream-{what}-{}-{run}", std::process::id());
    let stores = |what: &'static str, run: usize| {
        let mut stores = vec![Store::Memory {
            room_bound: RateLimit::OFF,
        }];
        if let Some((client, _)) = &dynamo {
            stores.push(Store::Dynamo {
                client: client.clone(),
                table: table(what, run),
            });
        }
        stores
    };

    // 1. What a stream adds to one publish.
    let mut rows = Vec::new();
    for store_index in 0..stores("cost", 0).len() {
        for stream in [Stream::None, Stream::SeqOnly, Stream::History] {
            let mut p50s = Vec::new();
            let mut p99s = Vec::new();
            let mut requests = BTreeMap::new();
            for run in 0..args.runs {
                let store = stores("cost", run).swap_remove(store_index);
                let (service, frames, _) = store.service(stream, 1).await?;
                if let Some((_, counter)) = &dynamo {
                    counter.take();
                }
                let sender = member(0);
                let mut latencies = Vec::with_capacity(args.messages);
                for _ in 0..args.messages {
                    let started = Instant::now();
                    service
                        .handle_message(&sender, PUBLISH)
                        .await
                        .map_err(|e| e.to_string())?;
                    latencies.push(started.elapsed());
                }
                if let (Store::Dynamo { .. }, Some((_, counter))) = (&store, &dynamo) {
                    requests = counter.take();
                }
                store.drop_table().await?;
                let delivered = frames.messages.load(Ordering::Relaxed) as usize;
                if delivered != args.messages {
                    return Err(format!(
                        "{} of {} publishes delivered",
                        delivered, args.messages
                    ));
                }
                latencies.sort();
                p50s.push(stats::percentile(&latencies, 50.0));
                p99s.push(stats::percentile(&latencies, 99.0));
            }
            let store = stores("cost", 0).swap_remove(store_index);
            rows.push((
                store.name(),
                stream,
                stats::median(p50s),
                stats::median(p99s),
                requests,
            ));
        }
    }
    print_cost(&args, &rows);

    // 2. The highest rate one room sustains.
    let mut rate_rows = Vec::new();
    let mut sustained = vec![
        Store::Memory {
            room_bound: RateLimit::OFF,
        },
        Store::Memory {
            room_bound: RateLimit {
                per_second: LOCAL_ROOM_BOUND,
                burst: LOCAL_ROOM_BOUND,
            },
        },
    ];
    if let Some((client, _)) = &dynamo {
        sustained.push(Store::Dynamo {
            client: client.clone(),
            table: table("rate", 0),
        });
    }
    for store in &sustained {
        let mut accepted_rates = Vec::new();
        let mut busy_rates = Vec::new();
        for _ in 0..args.runs {
            let (service, frames, _) = store.service(Stream::History, args.senders).await?;
            let service = Arc::new(service);
            let until = Instant::now() + Duration::from_secs_f64(args.seconds);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..args.senders {
                let service = service.clone();
                tasks.push(tokio::spawn(async move {
                    let sender = member(i);
                    // Bounded by time, and by count in case a publish never takes any.
                    for _ in 0..10_000_000u64 {
                        if Instant::now() >= until {
                            break;
                        }
                        service
                            .handle_message(&sender, PUBLISH)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<(), String>(())
                }));
            }
            for task in tasks {
                task.await.map_err(|e| e.to_string())??;
            }
            let elapsed = started.elapsed().as_secs_f64();
            // Each accepted publish reaches every member, the sender included.
            let accepted = frames.messages.load(Ordering::Relaxed) / args.senders as u64;
            let busy = frames.busy.load(Ordering::Relaxed);
            let errors = frames.errors.load(Ordering::Relaxed);
            if errors > 0 {
                return Err(format!(
                    "{errors} publishes refused for something other than room_busy"
                ));
            }
            accepted_rates.push(accepted as f64 / elapsed);
            busy_rates.push(busy as f64 / elapsed);
            store.drop_table().await?;
        }
        rate_rows.push(vec![
            store.name().to_string(),
            format!("{:.0}", median_f64(accepted_rates)),
            format!("{:.0}", median_f64(busy_rates)),
        ]);
    }
    println!(
        "\n{} senders publishing to one room for {} s (history on, rate limit off), median of {} runs\n",
        args.senders, args.seconds, args.runs
    );
    stats::table(&["store", "publishes/s taken", "room_busy/s"], &rate_rows);

    // 3. Catching up.
    let missed = args.missed.min(REPLAY_MAX_MESSAGES);
    let mut replay_rows = Vec::new();
    for store_index in 0..stores("replay", 0).len() {
        let mut times = Vec::new();
        for run in 0..args.runs {
            let store = stores("replay", run).swap_remove(store_index);
            let (service, frames, repo) = store.service(Stream::History, 1).await?;
            let sender = member(0);
            for _ in 0..missed {
                service
                    .handle_message(&sender, PUBLISH)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // A member that saw none of them rejoins from before the first.
            let returning = crate::forever("returning");
            let rejoin = format!(r#"{{"action":"join","room":"{ROOM}","since":0}}"#);
            repo.save(&returning).await.map_err(|e| e.to_string())?;
            let before = frames.messages.load(Ordering::Relaxed);
            let started = Instant::now();
            service
                .handle_message(&Sender::new(returning.id.clone(), None), rejoin.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let took = started.elapsed();
            let replayed = frames.messages.load(Ordering::Relaxed) - before;
            if replayed != missed {
                return Err(format!(
                    "the rejoin replayed {replayed} of {missed} messages"
                ));
            }
            times.push(took);
            store.drop_table().await?;
        }
        let store = stores("replay", 0).swap_remove(store_index);
        replay_rows.push(vec![
            store.name().to_string(),
            stats::ms(stats::median(times)),
        ]);
    }
    println!(
        "\njoin {{since}} replaying {missed} missed messages, median of {} runs\n",
        args.runs
    );
    stats::table(&["store", "ms to replay"], &replay_rows);
    Ok(())
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

type CostRow = (
    &'static str,
    Stream,
    Duration,
    Duration,
    BTreeMap<String, u64>,
);

fn print_cost(args: &Args, rows: &[CostRow]) {
    println!(
        "{} publishes to a room of 1 member (the sender), rate limit off, median of {} runs\n",
        args.messages, args.runs
    );
    let per = |requests: &BTreeMap<String, u64>, op: &str| {
        requests.get(op).copied().unwrap_or(0) as f64 / args.messages as f64
    };
    // Write units of items under 1 KB: one per UpdateItem or PutItem, two per item written in a
    // transaction.
    let writes = |r: &BTreeMap<String, u64>| {
        per(r, "UpdateItem") + per(r, "PutItem") + 2.0 * per(r, "TransactWriteItems")
    };
    let baseline: BTreeMap<&str, f64> = rows
        .iter()
        .filter(|row| matches!(row.1, Stream::None))
        .map(|row| (row.0, writes(&row.4)))
        .collect();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(store, stream, p50, p99, requests)| {
            let dynamo = !requests.is_empty();
            let added = writes(requests) - baseline.get(store).copied().unwrap_or(0.0);
            let cell = |op: &str| {
                if dynamo {
                    format!("{:.2}", per(requests, op))
                } else {
                    "-".into()
                }
            };
            vec![
                store.to_string(),
                stream.name().to_string(),
                micros(*p50),
                micros(*p99),
                cell("GetItem"),
                cell("UpdateItem"),
                cell("PutItem"),
                cell("Query"),
                if dynamo {
                    format!("{added:.2}")
                } else {
                    "-".into()
                },
                if dynamo {
                    format!("${:.3}", added * DOLLARS_PER_MILLION_WRITE_UNITS)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    stats::table(
        &[
            "store",
            "stream",
            "p50 µs / publish",
            "p99 µs / publish",
            "GetItem",
            "UpdateItem",
            "PutItem",
            "Query",
            "write units added",
            "$ added per million publishes",
        ],
        &table_rows,
    );
}
