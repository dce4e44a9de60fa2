//! A room of N members broadcast through the delivery queue: one backend job, W workers (tasks,
//! as the `fanout` Lambda's concurrency) running `DeliveryWorker` over the in-memory queue, each
//! job under a short simulated deadline so that next-page continuations and deadline hand-overs
//! both happen. Posts go through the real `@connections` client to the local stub (D ms a post),
//! once without throttling and once with the stub answering 429 above a rate.
//!
//! `--stub in-process` replaces the HTTP client and stub by a notifier that sleeps D in process
//! (`SleepingNotifier`): on a 2-core machine 16 workers' HTTP clients and the stub need more CPU
//! than there is, which a Lambda per worker would not share. `cpu µs/post` (this process's
//! getrusage over the run, per member delivered; the HTTP stub's CPU is not in it) shows which
//! bound a row hit.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters::apigateway::{ManagementEndpoint, NotifierClient, NotifierTimeouts, RootsRead};
use adapters::clock::{SystemClock, TokioSleeper};
use adapters::memory::{InMemoryConnectionRepository, MemoryQueue};
use domain::delivery::{DeliveryWorker, Received, Source};
use domain::{ClientNotifier, Clock, ConnectionRepository, RoomName, Settings};

use crate::sleeping_notifier::SleepingNotifier;
use crate::{cpu, management_stub, stats};

/// Members per page: large enough that a page outlasts a short deadline, so hand-overs happen.
const PAGE_SIZE: usize = 10_000;
/// Longest a run may take before it is reported as unfinished.
const MAX_WALL: Duration = Duration::from_secs(300);

pub struct Args {
    pub members: usize,
    pub workers: Vec<usize>,
    pub delay: Duration,
    pub job_deadline: Duration,
    /// At least one post's time budget (the notifier's timeouts) plus the enqueue after it.
    pub margin: Duration,
    pub throttle_above: u64,
    pub stubs: Vec<StubKind>,
    /// Only the throttled pass.
    pub only_throttled: bool,
}

/// What answers the posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StubKind {
    /// The real signed `@connections` client to the local stub in a child process.
    Http,
    /// `SleepingNotifier`: D per post in process, no HTTP.
    InProcess,
}

#[derive(Default)]
struct Tally {
    jobs: u64,
    continued: u64,
    handed_over: u64,
    delivered: u64,
    throttled: u64,
    failed: u64,
    longest: Duration,
    cut_off: u64,
}

type Worker = DeliveryWorker<Arc<InMemoryConnectionRepository>, Arc<dyn ClientNotifier>>;

async fn room_of(members: usize) -> Arc<InMemoryConnectionRepository> {
    let repo = Arc::new(InMemoryConnectionRepository::with_page_size(PAGE_SIZE));
    let now = SystemClock.now();
    let big = RoomName::parse("big").expect("a valid room name");
    for i in 0..members {
        let connection = crate::forever(&format!("live-{i:06}"));
        repo.save(&connection).await.expect("save");
        repo.join(&connection.id, &big, 50, now)
            .await
            .expect("join");
    }
    repo
}

/// One worker task: jobs until the queue is empty and stays so.
async fn work(
    queue: MemoryQueue,
    worker: Arc<Worker>,
    deadline: Duration,
    tally: Arc<Mutex<Tally>>,
) {
    let ran_out = Instant::now() + MAX_WALL;
    while Instant::now() < ran_out {
        let leases = queue.receive(1, Duration::from_millis(50)).await;
        if leases.is_empty() && queue.outstanding() == 0 {
            return;
        }
        for lease in leases {
            let started = Instant::now();
            let at = SystemClock.now().saturating_add(deadline);
            // One queue for the backend's job and the service's own, as in the local gateway's
            // tests: the service's schema reads both.
            let message = Received {
                id: lease.message_id(),
                sent_at: lease.sent_at(),
                body: lease.body(),
                source: Source::Service,
            };
            let result = tokio::time::timeout(deadline, worker.handle(message, at)).await;
            let took = started.elapsed();
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            t.jobs += 1;
            t.longest = t.longest.max(took);
            match result {
                Ok(Ok(report)) => {
                    t.continued += u64::from(report.continued);
                    t.handed_over += u64::from(report.handed_over > 0);
                    t.delivered += report.delivery.delivered;
                    t.throttled += report.delivery.throttled;
                    t.failed += report.delivery.failed;
                    drop(t);
                    lease.ack();
                }
                Ok(Err(e)) => {
                    drop(t);
                    eprintln!("a job failed: {e}");
                    lease.release();
                }
                Err(_) => {
                    t.cut_off += 1;
                    drop(t);
                    lease.release();
                }
            }
        }
    }
}

async fn one_run(
    repo: &Arc<InMemoryConnectionRepository>,
    notifier: Arc<dyn ClientNotifier>,
    workers: usize,
    args: &Args,
) -> (Duration, Duration, Tally) {
    let queue = MemoryQueue::default();
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(64).expect("64 > 0"),
        presence_max_members: 0,
        job_safety_margin: args.margin,
        ..Settings::default()
    };
    let worker = Arc::new(DeliveryWorker::new(
        repo.clone(),
        notifier,
        Arc::new(queue.clone()),
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
        settings,
    ));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu_before = cpu::process_cpu();
    let started = Instant::now();
    queue.send_raw(r#"{"room":"big","data":{"text":"benchmark"}}"#);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(work(
                queue.clone(),
                worker.clone(),
                args.job_deadline,
                tally.clone(),
            ))
        })
        .collect();
    for task in tasks {
        task.await.expect("a worker panicked");
    }
    let wall = started.elapsed();
    let cpu = cpu::process_cpu().saturating_sub(cpu_before);
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    (wall, cpu, tally)
}

#[allow(clippy::too_many_arguments)]
fn row(
    label: &str,
    throttle: Option<u64>,
    workers: usize,
    members: usize,
    wall: Duration,
    cpu: Duration,
    t: &Tally,
    deadline: Duration,
) -> Vec<String> {
    let posts = t.delivered + t.failed;
    vec![
        label.to_string(),
        workers.to_string(),
        stats::ms(wall),
        format!("{:.0}", t.delivered as f64 / wall.as_secs_f64()),
        cpu::micros_per(cpu, t.delivered as usize),
        format!("{} / {} / {}", t.jobs, t.continued, t.handed_over),
        format!("{} / {}", stats::ms(t.longest), stats::ms(deadline)),
        format!("{:.1} %", 100.0 * t.delivered as f64 / members as f64),
        format!(
            "{:.1} %",
            100.0 * t.throttled as f64 / (posts + t.throttled).max(1) as f64
        ),
        match throttle {
            Some(rate) => format!(
                "{:.1} %",
                100.0 * t.delivered as f64 / wall.as_secs_f64() / rate as f64
            ),
            None => "-".into(),
        },
        t.cut_off.to_string(),
    ]
}

pub async fn run(args: Args) -> Result<(), String> {
    let sdk = crate::local_sdk_config().await;
    // The Lambdas' timeouts: the margin must outlast one post, so a job never runs past its
    // deadline.
    let timeouts = NotifierTimeouts::default();
    println!(
        "fan-out through the delivery queue: {} members, pages of {PAGE_SIZE}, D = {} ms per post, 64 posts in flight per worker, each job cut off at {} ms (margin {} ms)\n",
        args.members,
        args.delay.as_millis(),
        args.job_deadline.as_millis(),
        args.margin.as_millis()
    );
    let repo = room_of(args.members).await;
    let mut rows = Vec::new();
    for &stub_kind in &args.stubs {
        let passes: &[Option<u64>] = if args.only_throttled {
            &[Some(args.throttle_above)]
        } else {
            &[None, Some(args.throttle_above)]
        };
        for &throttle in passes {
            // Kept alive for the runs: dropping it stops the child.
            let mut _stub = None;
            let notifier: Arc<dyn ClientNotifier> = match stub_kind {
                StubKind::Http => {
                    let stub = management_stub::spawn_throttling(args.delay, throttle).await?;
                    let endpoint =
                        ManagementEndpoint::parse(&stub.endpoint).map_err(|e| e.to_string())?;
                    _stub = Some(stub);
                    NotifierClient::default()
                        .build(&sdk, &endpoint, timeouts, RootsRead::AtFirstPost)
                        .map_err(|e| e.to_string())?
                }
                StubKind::InProcess => Arc::new(SleepingNotifier::new(args.delay, throttle)),
            };
            let kind = match stub_kind {
                StubKind::Http => "HTTP",
                StubKind::InProcess => "in-process",
            };
            let label = match throttle {
                Some(rate) => format!("{kind}, 429 above {rate}/s"),
                None => format!("{kind}, no throttle"),
            };
            let workers = if throttle.is_some() {
                args.workers.iter().copied().max().into_iter().collect()
            } else {
                args.workers.clone()
            };
            for w in workers {
                let (wall, cpu, tally) = one_run(&repo, notifier.clone(), w, &args).await;
                rows.push(row(
                    &label,
                    throttle,
                    w,
                    args.members,
                    wall,
                    cpu,
                    &tally,
                    args.job_deadline,
                ));
            }
        }
    }
    stats::table(
        &[
            "stub",
            "workers",
            "wall ms",
            "posts/s",
            "cpu µs/post",
            "jobs / next-page / hand-over",
            "longest job / deadline",
            "delivered",
            "429s",
            "posts/s of the quota",
            "cut off",
        ],
        &rows,
    );
    if let Some((_, peak)) = stats::rss_kib(std::process::id()) {
        println!(
            "\npeak RSS of this process (the room, the queue, the workers): {:.0} MiB",
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
