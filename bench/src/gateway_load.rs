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
    pub gateway_args: Vec<String>,
}

#[derive(Default)]
struct Observed {
    frames: AtomicU64,
    acks: AtomicU64,
    pings: Mutex<HashMap<String, Instant>>,
    rtts: Mutex<Vec<Duration>>,
}

async fn spawn_gateway(
    binary: &Path,
    extra: &[String],
) -> Result<(tokio::process::Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = tokio::process::Command::new(binary)
        .args(["--port", &port.to_string(), "--idle-timeout-secs", "3600"])
        .args(extra)
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

/// A running gateway with `clients` connected sockets, each in a room of `room_size`.
struct Loaded {
    gateway: tokio::process::Child,
    pid: u32,
    sinks: Vec<Sink>,
    seen: Arc<Observed>,
    idle_rss: u64,
    connect_time: Duration,
}

async fn connect_and_join(binary: &Path, args: &Args) -> Result<Loaded, String> {
    let (clients, room_size) = (args.clients, args.room_size);
    let (gateway, url) = spawn_gateway(binary, &args.gateway_args).await?;
    let pid = gateway.id().unwrap_or(0);
    let idle_rss = stats::rss_kib(pid).map_or(0, |r| r.0);
    let seen = Arc::new(Observed::default());

    // Connect, at most 200 handshakes in flight.
    let started = Instant::now();
    let mut sinks: Vec<Sink> = Vec::with_capacity(clients);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while sinks.len() < clients {
        while next < clients && pending.len() < 200 {
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

    // Rooms of K: client i joins room i / K.
    for (i, sink) in sinks.iter_mut().enumerate() {
        let join =
            json!({"action": "join", "room": format!("r{}", i / room_size), "requestId": "j"});
        sink.send(Message::Text(join.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    if !wait_for(&seen.acks, clients as u64, Duration::from_secs(60)).await {
        return Err(format!(
            "only {} of {} joins acknowledged",
            seen.acks.load(Ordering::Relaxed),
            clients
        ));
    }
    Ok(Loaded {
        gateway,
        pid,
        sinks,
        seen,
        idle_rss,
        connect_time,
    })
}

/// Sends `total` messages at `rate`/s, alternating room publishes and pings.
async fn steady_mix(
    loaded: &mut Loaded,
    room_size: usize,
    rate: u32,
    total: u64,
    first: u64,
) -> Result<(), String> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticker = tokio::time::interval(interval);
    for n in first..first + total {
        ticker.tick().await;
        let i = (n as usize * 7919) % loaded.sinks.len();
        let message = if n % 2 == 0 {
            json!({"action": "publish", "room": format!("r{}", i / room_size), "data": n})
        } else {
            let id = format!("p{n}");
            loaded
                .seen
                .pings
                .lock()
                .expect("pings")
                .insert(id.clone(), Instant::now());
            json!({"action": "ping", "requestId": id})
        };
        loaded.sinks[i]
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn wait_for_pongs(seen: &Observed, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.rtts.lock().expect("rtts").len() as u64) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(binary: &Path, args: Args) -> Result<Vec<String>, String> {
    let mut loaded = connect_and_join(binary, &args).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let connected_rss = stats::rss_kib(loaded.pid).map_or(0, |r| r.0);

    let total = u64::from(args.rate) * args.seconds;
    let frames_before = loaded.seen.frames.load(Ordering::Relaxed);
    let cpu_before = crate::cpu::cpu_of(loaded.pid);
    let load_started = Instant::now();
    steady_mix(&mut loaded, args.room_size, args.rate, total, 0).await?;
    wait_for_pongs(&loaded.seen, total / 2).await;
    let load_time = load_started.elapsed();
    let gateway_cpu = crate::cpu::cpu_of(loaded.pid)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let frames = loaded.seen.frames.load(Ordering::Relaxed) - frames_before;
    let loaded_rss = stats::rss_kib(loaded.pid).map_or(0, |r| r.0);
    let mut rtts = loaded.seen.rtts.lock().expect("rtts").clone();
    rtts.sort();

    Ok(vec![
        args.clients.to_string(),
        format!(
            "{:.0}",
            args.clients as f64 / loaded.connect_time.as_secs_f64()
        ),
        format!(
            "{:.1} / {:.1} / {:.1}",
            loaded.idle_rss as f64 / 1024.0,
            connected_rss as f64 / 1024.0,
            loaded_rss as f64 / 1024.0
        ),
        format!("{:.0}", frames as f64 / load_time.as_secs_f64()),
        format!("{} / {}", rtts.len(), total / 2),
        stats::ms(stats::percentile(&rtts, 50.0)),
        stats::ms(stats::percentile(&rtts, 99.0)),
        // The gateway's CPU over the steady mix, per message a client sent (publish or ping).
        gateway_cpu.map_or("-".into(), |cpu| {
            format!("{:.3}", cpu.as_secs_f64() * 1e3 / total.max(1) as f64)
        }),
    ])
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The soak: a steady mix for `minutes`, sampling the gateway's RSS and open files each `every`.
pub async fn soak(binary: &Path, args: Args, minutes: u64, every: Duration) -> Result<(), String> {
    let mut loaded = connect_and_join(binary, &args).await?;
    // Warm up for one interval so allocator pools reach their working size before the baseline.
    let per_sample = u64::from(args.rate) * every.as_secs();
    steady_mix(&mut loaded, args.room_size, args.rate, per_sample, 0).await?;
    let baseline = (
        stats::rss_kib(loaded.pid).map_or(0, |r| r.0),
        open_fds(loaded.pid),
    );
    let samples = (minutes * 60) / every.as_secs().max(1);
    let mut rows = vec![vec![
        "0".to_string(),
        format!("{:.1}", baseline.0 as f64 / 1024.0),
        baseline.1.to_string(),
        "-".into(),
    ]];
    let mut sent = per_sample;
    for sample in 1..=samples {
        steady_mix(&mut loaded, args.room_size, args.rate, per_sample, sent).await?;
        sent += per_sample;
        let rss = stats::rss_kib(loaded.pid).map_or(0, |r| r.0);
        let pongs = loaded.seen.rtts.lock().expect("rtts").len();
        rows.push(vec![
            (sample * every.as_secs()).to_string(),
            format!("{:.1}", rss as f64 / 1024.0),
            open_fds(loaded.pid).to_string(),
            format!("{pongs} / {}", sent / 2),
        ]);
    }
    wait_for_pongs(&loaded.seen, sent / 2).await;
    let end = (
        stats::rss_kib(loaded.pid).map_or(0, |r| r.0),
        open_fds(loaded.pid),
    );
    let pongs = loaded.seen.rtts.lock().expect("rtts").len() as u64;
    println!(
        "soak: {} clients in rooms of {}, {} messages/s for {minutes} min after a warm-up of {} s\n",
        args.clients,
        args.room_size,
        args.rate,
        every.as_secs()
    );
    stats::table(&["seconds", "RSS MiB", "open fds", "pongs / pings"], &rows);
    let growth = (end.0 as f64 - baseline.0 as f64) / baseline.0.max(1) as f64 * 100.0;
    println!(
        "\nRSS growth {growth:+.1} % (goal: under 5 %); open files {} -> {}; lost pongs: {}",
        baseline.1,
        end.1,
        (sent / 2).saturating_sub(pongs)
    );
    drop(loaded.gateway);
    Ok(())
}

pub fn print(rows: &[Vec<String>], args: &Args) {
    println!(
        "local gateway under load: rooms of {}, {} messages/s for {} s (half publishes, half pings), gateway args {:?}\n",
        args.room_size, args.rate, args.seconds, args.gateway_args
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
            "gateway CPU ms / message",
        ],
        rows,
    );
}
