//! CPU per `@connections` post, for each client on each tokio runtime: P posts, K in flight, to a
//! local server in a child process that answers at once, so the figure is the client's own work
//! (HTTP, signing, SDK layers, scheduling) and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::apigateway::{ManagementEndpoint, NotifierClient, NotifierTimeouts, RootsRead};
use domain::{ClientNotifier, ConnectionId};
use futures::StreamExt;

use crate::floor_notifier::FloorNotifier;
use crate::{cpu, management_stub, stats};

#[derive(Clone)]
pub struct Args {
    pub posts: usize,
    pub in_flight: usize,
    pub runs: usize,
    pub notifiers: Vec<Client>,
    pub flavors: Vec<Flavor>,
}

/// The two notifiers, and the floor they are measured against.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Client {
    Sdk,
    Signed,
    /// Bare hyper and aws-sigv4 (`floor_notifier.rs`).
    Floor,
}

impl Client {
    fn build(
        self,
        sdk: &aws_config::SdkConfig,
        endpoint: &ManagementEndpoint,
    ) -> Result<Arc<dyn ClientNotifier>, String> {
        let client = match self {
            Self::Sdk => NotifierClient::Sdk,
            Self::Signed => NotifierClient::Signed,
            Self::Floor => return Ok(Arc::new(FloorNotifier::new(endpoint.as_str()))),
        };
        client
            .build(
                sdk,
                endpoint,
                NotifierTimeouts::default(),
                RootsRead::AtFirstPost,
            )
            .map_err(|e| e.to_string())
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sdk => "sdk",
            Self::Signed => "signed",
            Self::Floor => "floor: bare hyper + aws-sigv4",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Flavor {
    CurrentThread,
    MultiThread,
}

impl Flavor {
    fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Self::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        };
        builder.enable_all().build()
    }

    fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current_thread",
            Self::MultiThread => "multi_thread",
        }
    }
}

/// A chat message of a typical size.
const FRAME: &[u8] =
    br#"{"type":"message","room":"lobby","from":"alice","text":"benchmark message"}"#;

struct Run {
    cpu: Duration,
    wall: Duration,
    failed: usize,
}

/// `count` posts, `in_flight` at a time, to 1 000 distinct connection ids.
async fn post_all(
    notifier: &dyn ClientNotifier,
    ids: &[ConnectionId],
    count: usize,
    in_flight: usize,
) -> usize {
    futures::stream::iter(0..count)
        .map(|i| notifier.send(&ids[i % ids.len()], FRAME))
        .buffer_unordered(in_flight)
        .filter(|result| futures::future::ready(result.is_err()))
        .count()
        .await
}

/// Runs on its own thread: a runtime of `flavor`, one notifier, a warm-up that fills the
/// connection pool (a warm Lambda's state), then the measured runs.
fn measure(
    flavor: Flavor,
    client: Client,
    endpoint: &ManagementEndpoint,
    args: &Args,
) -> Result<Vec<Run>, String> {
    let runtime = flavor.runtime().map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let sdk = crate::local_sdk_config().await;
        let notifier = client.build(&sdk, endpoint)?;
        let ids = (0..1000)
            .map(|i| ConnectionId::parse(format!("live-{i}")).map_err(|e| format!("{e:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        post_all(notifier.as_ref(), &ids, args.in_flight * 4, args.in_flight).await;
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            let cpu_before = cpu::process_cpu();
            let started = Instant::now();
            let failed = post_all(notifier.as_ref(), &ids, args.posts, args.in_flight).await;
            runs.push(Run {
                wall: started.elapsed(),
                cpu: cpu::process_cpu().saturating_sub(cpu_before),
                failed,
            });
        }
        Ok(runs)
    })
}

pub async fn run(args: Args) -> Result<(), String> {
    let stub = management_stub::spawn(Duration::ZERO).await?;
    let endpoint = ManagementEndpoint::parse(&stub.endpoint).map_err(|e| e.to_string())?;
    println!(
        "CPU per post: {} posts, {} in flight, median of {} runs after a warm-up; cpu = this process's user + system time (getrusage), the server runs in a child process\n",
        args.posts, args.in_flight, args.runs
    );
    let mut rows = Vec::new();
    for &flavor in &args.flavors {
        for &client in &args.notifiers {
            let endpoint = endpoint.clone();
            let thread_args = args.clone();
            // A thread of its own: a runtime cannot be started inside this one.
            let runs = std::thread::spawn(move || measure(flavor, client, &endpoint, &thread_args))
                .join()
                .map_err(|_| "the measuring thread panicked".to_string())??;
            let failed: usize = runs.iter().map(|r| r.failed).sum();
            let cpu = stats::median(runs.iter().map(|r| r.cpu).collect());
            let wall = stats::median(runs.iter().map(|r| r.wall).collect());
            rows.push(vec![
                client.name().to_string(),
                flavor.name().to_string(),
                cpu::micros_per(cpu, args.posts),
                format!("{:.0}", args.posts as f64 / wall.as_secs_f64()),
                failed.to_string(),
            ]);
        }
    }
    stats::table(
        &[
            "notifier",
            "runtime",
            "cpu µs/post",
            "posts/s (wall)",
            "failed",
        ],
        &rows,
    );
    println!(
        "\n(the local @connections server saw {} posts)",
        stub.posts().await?
    );
    Ok(())
}
