//! Broadcast to N connections through a real `@connections` client (the Lambdas' default unless
//! `--notifier` says otherwise), against a local server in a child process that takes D ms per post
//! and answers 410 for a share of the ids. `cpu µs/post` is this process's CPU time (getrusage)
//! over the broadcast, divided by N: the server's CPU is not in it.
//!
//! `cold` builds a new notifier for every run, so the broadcast opens up to `concurrency`
//! connections inside the timed window (a cold Lambda's first broadcast); `warm` builds one per
//! row and sends one untimed broadcast first, so the timed runs reuse its pooled connections (a
//! warm Lambda's case).
//!
//! `--via broadcast` (the default) is an invocation without a queue, reading the audience page by
//! page; `--via job` is a fan-out worker's job continuing a room too large for the sender's
//! invocation (a cursor job: the `fanout` Lambda's large broadcasts), the room in one page.
//! `--page-read-ms` makes every page read wait that long, as DynamoDB's `Query` does: a worker
//! opens its connections during that wait (`ClientNotifier::prepare`).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::apigateway::{ManagementEndpoint, NotifierClient, NotifierTimeouts, RootsRead};
use adapters::clock::{SystemClock, TokioSleeper};
use adapters::memory::{InMemoryConnectionRepository, MemoryQueue};
use adapters::wiring;
use domain::delivery::{DeliveryJob, DeliveryWorker, JobTarget, MessageId};
use domain::{
    ClientNotifier, Clock, ConnectionId, ConnectionRepository, Handled, PageToken, RoomName,
    Sender, Settings, WebSocketService,
};

use crate::{cpu, management_stub, stats};

pub struct Args {
    pub recipients: Vec<usize>,
    pub concurrency: Vec<usize>,
    pub delay: Duration,
    pub gone_share: f64,
    pub runs: usize,
    /// Combinations whose lower bound exceeds this are not run (and say so).
    pub max_lower_bound: Duration,
    pub notifier: NotifierClient,
    pub pools: Vec<Pool>,
    pub via: Via,
    /// How long each page read waits (a remote store's `Query`).
    pub page_read: Duration,
}

/// What posts: an invocation's broadcast, or a fan-out worker's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `sendmessage` to everyone, in an invocation with no delivery queue.
    Broadcast,
    /// A worker's job continuing a room's audience from a cursor, as the sender's invocation
    /// queues it for a room larger than it posts inline.
    Job,
}

/// The room a `--via job` run posts to, and the cursor its job continues from (an id before
/// every member's).
const ROOM: &str = "bench";
const BEFORE_EVERY_MEMBER: &str = "a";

/// Whether a broadcast starts with the notifier's connection pool empty or filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pool {
    Cold,
    Warm,
}

struct Run {
    wall: Duration,
    cpu: Duration,
    delivered: u64,
    gone: u64,
    rows_left: usize,
}

/// The bench's timeouts, generous so a busy machine's slow answer is not counted as a failure.
fn build_notifier(
    args: &Args,
    sdk: &aws_config::SdkConfig,
    endpoint: &ManagementEndpoint,
) -> Arc<dyn ClientNotifier> {
    let timeouts = NotifierTimeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(10),
    };
    args.notifier
        .build(sdk, endpoint, timeouts, RootsRead::AtFirstPost)
        .expect("notifier")
}

async fn one_run(
    n: usize,
    concurrency: usize,
    args: &Args,
    notifier: Arc<dyn ClientNotifier>,
) -> Run {
    let gone = (n as f64 * args.gone_share).round() as usize;
    let page_size = match args.via {
        Via::Broadcast => 1000,
        Via::Job => n,
    };
    let repo = Arc::new(
        InMemoryConnectionRepository::with_page_size(page_size)
            .with_page_read_delay(args.page_read),
    );
    let room = RoomName::parse(ROOM).expect("a room name");
    for i in 0..n {
        let raw = if i < gone {
            format!("gone-{i}")
        } else {
            format!("live-{i}")
        };
        let connection = crate::forever(&raw);
        repo.save(&connection).await.expect("save");
        if args.via == Via::Job {
            repo.join(&connection.id, &room, 1, SystemClock.now())
                .await
                .expect("join");
        }
    }
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(concurrency).expect("concurrency > 0"),
        ..Settings::default()
    };
    if args.via == Via::Job {
        return job_run(repo, notifier, settings, room).await;
    }
    let service: WebSocketService<_, _> = wiring::service(repo.clone(), notifier, settings);
    let sender = Sender::new(
        ConnectionId::parse(format!("live-{}", n - 1)).expect("id"),
        None,
    );

    let started = Instant::now();
    let cpu_before = cpu::process_cpu();
    let handled = service
        .handle_message(
            &sender,
            br#"{"action":"sendmessage","data":{"text":"benchmark"}}"#,
        )
        .await
        .expect("fan-out failed");
    let wall = started.elapsed();
    let cpu = cpu::process_cpu().saturating_sub(cpu_before);

    let Handled::Done { report, .. } = handled else {
        panic!("refused: {handled:?}")
    };
    Run {
        wall,
        cpu,
        delivered: report.delivered,
        gone: report.gone,
        rows_left: repo.stored_rows().0,
    }
}

/// A worker's job for `room`, continued from a cursor before every member: the page read, then
/// every post.
async fn job_run(
    repo: Arc<InMemoryConnectionRepository>,
    notifier: Arc<dyn ClientNotifier>,
    settings: Settings,
    room: RoomName,
) -> Run {
    let worker = DeliveryWorker::new(
        repo.clone(),
        notifier,
        Arc::new(MemoryQueue::default()),
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
        settings,
    );
    let data =
        serde_json::value::RawValue::from_string(r#"{"text":"benchmark"}"#.into()).expect("JSON");
    let job = DeliveryJob {
        sent_at: Some(SystemClock.now().as_millis()),
        ..DeliveryJob::new(MessageId::random(), JobTarget::Room(room), data)
    }
    .continued_at(PageToken::new(BEFORE_EVERY_MEMBER));
    let deadline = SystemClock.now().saturating_add(Duration::from_secs(600));

    let started = Instant::now();
    let cpu_before = cpu::process_cpu();
    let report = worker.run(job, deadline).await.expect("the job ran");
    let wall = started.elapsed();
    let cpu = cpu::process_cpu().saturating_sub(cpu_before);

    Run {
        wall,
        cpu,
        delivered: report.delivery.delivered,
        gone: report.delivery.gone,
        rows_left: repo.stored_rows().0,
    }
}

pub async fn run(args: Args) -> Result<(), String> {
    let stub = management_stub::spawn(args.delay).await?;
    let endpoint = ManagementEndpoint::parse(&stub.endpoint).expect("endpoint");
    let sdk = crate::local_sdk_config().await;
    println!(
        "fan-out through the {} notifier, via {:?}: D = {} ms per post, each page read {} ms, {:.0} % gone, median of {} runs; efficiency = (first page read + N x D / concurrency) / measured; cpu = this process's CPU per post (the server runs in a child process)\n",
        args.notifier,
        args.via,
        args.delay.as_millis(),
        args.page_read.as_millis(),
        args.gone_share * 100.0,
        args.runs
    );
    let mut rows = Vec::new();
    for &n in &args.recipients {
        for &c in &args.concurrency {
            // The first page read cannot overlap a post; the later ones do.
            let lower_bound = args.page_read + args.delay.mul_f64(n as f64 / c as f64);
            if lower_bound > args.max_lower_bound {
                rows.push(vec![
                    n.to_string(),
                    c.to_string(),
                    "".into(),
                    format!("not run: lower bound {:.0} s", lower_bound.as_secs_f64()),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
                continue;
            }
            for &pool in &args.pools {
                let warm = match pool {
                    Pool::Cold => None,
                    Pool::Warm => {
                        let notifier = build_notifier(&args, &sdk, &endpoint);
                        one_run(n, c, &args, notifier.clone()).await;
                        Some(notifier)
                    }
                };
                let mut walls = Vec::new();
                let mut cpus = Vec::new();
                let mut last = None;
                for _ in 0..args.runs {
                    let notifier = warm
                        .clone()
                        .unwrap_or_else(|| build_notifier(&args, &sdk, &endpoint));
                    let run = one_run(n, c, &args, notifier).await;
                    walls.push(run.wall);
                    cpus.push(run.cpu);
                    last = Some(run);
                }
                let run = last.expect("at least one run");
                let expected_gone = (n as f64 * args.gone_share).round() as u64;
                let pruned =
                    run.gone == expected_gone && run.rows_left == n - expected_gone as usize;
                let wall = stats::median(walls);
                rows.push(vec![
                    n.to_string(),
                    c.to_string(),
                    format!("{pool:?}").to_lowercase(),
                    stats::ms(wall),
                    format!("{:.0}", n as f64 / wall.as_secs_f64()),
                    format!("{:.2}", lower_bound.as_secs_f64() / wall.as_secs_f64()),
                    cpu::micros_per(stats::median(cpus), n),
                    format!(
                        "{} / {} / {}",
                        run.delivered,
                        run.gone,
                        if pruned {
                            "all gone rows pruned"
                        } else {
                            "PRUNING MISMATCH"
                        }
                    ),
                ]);
            }
        }
    }
    stats::table(
        &[
            "N",
            "concurrency",
            "pool",
            "wall ms",
            "posts/s",
            "efficiency",
            "cpu µs/post",
            "delivered / gone / pruning",
        ],
        &rows,
    );
    println!(
        "\n(the local @connections server saw {} posts)",
        stub.posts().await?
    );
    Ok(())
}
