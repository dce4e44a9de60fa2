//! The release local gateway under load: N clients connect, join rooms of K, then a steady mix
//! of room publishes and pings for a few seconds. Every loop is bounded in count and time, and
//! all traffic stays on 127.0.0.1.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, SplitSink};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::stats;

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

pub struct Args {
    pub clients: usize,
    pub room_size: usize,
    pub rate: u32,
    pub seconds: u64,
}

#[derive(Default)]
struct Observed {
    frames: AtomicU64,
    acks: AtomicU64,
    pings: Mutex<HashMap<String, Instant>>,
    rtts: Mutex<Vec<Duration>>,
}

async fn spawn_gateway(binary: &Path) -> Result<(tokio::process::Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = tokio::process::Command::new(binary)
        .args(["--port", &port.to_string(), "--idle-timeout-secs", "3600"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let url = format!("ws://127.0.0.1:{port}/local");
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((child, url));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the local gateway did not listen within 10 s".into())
}

fn reader(
    mut stream: futures::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    seen: Arc<Observed>,
) {
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match frame["type"].as_str() {
                Some("message") => {
                    seen.frames.fetch_add(1, Ordering::Relaxed);
                }
                Some("ack") => {
                    seen.acks.fetch_add(1, Ordering::Relaxed);
                }
                Some("pong") => {
                    let id = frame["requestId"].as_str().unwrap_or_default().to_string();
                    if let Some(sent) = seen.pings.lock().expect("pings").remove(&id) {
                        seen.rtts.lock().expect("rtts").push(sent.elapsed());
                    }
                }
                _ => {}
            }
        }
    });
}

async fn wait_for(counter: &AtomicU64, target: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while counter.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

pub async fn run(binary: &Path, args: Args) -> Result<Vec<String>, String> {
    let (gateway, url) = spawn_gateway(binary).await?;
    let pid = gateway.id().unwrap_or(0);
    let idle_rss = stats::rss_kib(pid).map_or(0, |r| r.0);
    let seen = Arc::new(Observed::default());

    // Connect, at most 200 handshakes in flight.
    let started = Instant::now();
    let mut sinks: Vec<Sink> = Vec::with_capacity(args.clients);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while sinks.len() < args.clients {
        while next < args.clients && pending.len() < 200 {
            pending.push(connect_async(url.clone()));
            next += 1;
        }
        match pending.next().await {
            Some(Ok((socket, _))) => {
                let (sink, stream) = socket.split();
                reader(stream, seen.clone());
                sinks.push(sink);
            }
            Some(Err(e)) => {
                return Err(format!("connect failed after {} clients: {e}", sinks.len()));
            }
            None => break,
        }
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let connected_rss = stats::rss_kib(pid).map_or(0, |r| r.0);

    // Rooms of K: client i joins room i / K.
    for (i, sink) in sinks.iter_mut().enumerate() {
        let join =
            json!({"action": "join", "room": format!("r{}", i / args.room_size), "requestId": "j"});
        sink.send(Message::Text(join.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    if !wait_for(&seen.acks, args.clients as u64, Duration::from_secs(60)).await {
        return Err(format!(
            "only {} of {} joins acknowledged",
            seen.acks.load(Ordering::Relaxed),
            args.clients
        ));
    }

    // A steady mix: half room publishes, half pings, at `rate` messages/s in all.
    let total = args.rate as u64 * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut ticker = tokio::time::interval(interval);
    let frames_before = seen.frames.load(Ordering::Relaxed);
    let load_started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let i = (n as usize * 7919) % sinks.len();
        let message = if n % 2 == 0 {
            json!({"action": "publish", "room": format!("r{}", i / args.room_size), "data": n})
        } else {
            let id = format!("p{n}");
            seen.pings
                .lock()
                .expect("pings")
                .insert(id.clone(), Instant::now());
            json!({"action": "ping", "requestId": id})
        };
        sinks[i]
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let expected_pongs = total / 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.rtts.lock().expect("rtts").len() as u64) < expected_pongs
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_time = load_started.elapsed();
    let frames = seen.frames.load(Ordering::Relaxed) - frames_before;
    let loaded_rss = stats::rss_kib(pid).map_or(0, |r| r.0);
    let mut rtts = seen.rtts.lock().expect("rtts").clone();
    rtts.sort();
    drop(sinks);
    drop(gateway);

    Ok(vec![
        args.clients.to_string(),
        format!("{:.0}", args.clients as f64 / connect_time.as_secs_f64()),
        format!(
            "{:.1} / {:.1} / {:.1}",
            idle_rss as f64 / 1024.0,
            connected_rss as f64 / 1024.0,
            loaded_rss as f64 / 1024.0
        ),
        format!("{:.0}", frames as f64 / load_time.as_secs_f64()),
        format!("{} / {}", rtts.len(), expected_pongs),
        stats::ms(stats::percentile(&rtts, 50.0)),
        stats::ms(stats::percentile(&rtts, 99.0)),
    ])
}

pub fn print(rows: &[Vec<String>], args: &Args) {
    println!(
        "local gateway under load: rooms of {}, {} messages/s for {} s (half publishes, half pings)\n",
        args.room_size, args.rate, args.seconds
    );
    stats::table(
        &[
            "clients",
            "connects/s",
            "RSS MiB idle / connected / loaded",
            "message frames/s delivered",
            "pongs",
            "ping p50 ms",
            "ping p99 ms",
        ],
        rows,
    );
}
