//! Broadcast to N connections through the real `ApiGatewayNotifier`, against a local
//! `@connections` server that takes D ms per post and answers 410 for a share of the ids.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::apigateway::{ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts};
use adapters::memory::InMemoryConnectionRepository;
use adapters::wiring;
use domain::{ConnectionId, ConnectionRepository, Handled, Sender, Settings, WebSocketService};

use crate::{management_stub, stats};

pub struct Args {
    pub recipients: Vec<usize>,
    pub concurrency: Vec<usize>,
    pub delay: Duration,
    pub gone_share: f64,
    pub runs: usize,
    /// Combinations whose lower bound exceeds this are not run (and say so).
    pub max_lower_bound: Duration,
}

struct Run {
    wall: Duration,
    delivered: u64,
    gone: u64,
    rows_left: usize,
}

async fn one_run(
    n: usize,
    concurrency: usize,
    args: &Args,
    sdk: &aws_config::SdkConfig,
    endpoint: &ManagementEndpoint,
) -> Run {
    let gone = (n as f64 * args.gone_share).round() as usize;
    let repo = Arc::new(InMemoryConnectionRepository::with_page_size(1000));
    for i in 0..n {
        let raw = if i < gone {
            format!("gone-{i}")
        } else {
            format!("live-{i}")
        };
        repo.save(&crate::forever(&raw)).await.expect("save");
    }
    let timeouts = NotifierTimeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(10),
    };
    let notifier = ApiGatewayNotifier::new(sdk, endpoint, timeouts);
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(concurrency).expect("concurrency > 0"),
        ..Settings::default()
    };
    let service: WebSocketService<_, _> = wiring::service(repo.clone(), notifier, settings);
    let sender = Sender::new(
        ConnectionId::parse(format!("live-{}", n - 1)).expect("id"),
        None,
    );

    let started = Instant::now();
    let handled = service
        .handle_message(
            &sender,
            br#"{"action":"sendmessage","data":{"text":"benchmark"}}"#,
        )
        .await
        .expect("fan-out failed");
    let wall = started.elapsed();

    let Handled::Done { report, .. } = handled else {
        panic!("refused: {handled:?}")
    };
    Run {
        wall,
        delivered: report.delivered,
        gone: report.gone,
        rows_left: repo.stored_rows().0,
    }
}

pub async fn run(args: Args) {
    let stub = management_stub::start(args.delay).await;
    let endpoint = ManagementEndpoint::parse(&stub.endpoint).expect("endpoint");
    let sdk = crate::local_sdk_config().await;
    println!(
        "fan-out: D = {} ms per post, {:.0} % gone, median of {} runs; efficiency = (N x D / concurrency) / measured\n",
        args.delay.as_millis(),
        args.gone_share * 100.0,
        args.runs
    );
    let mut rows = Vec::new();
    for &n in &args.recipients {
        for &c in &args.concurrency {
            let lower_bound = args.delay.mul_f64(n as f64 / c as f64);
            if lower_bound > args.max_lower_bound {
                rows.push(vec![
                    n.to_string(),
                    c.to_string(),
                    format!("not run: lower bound {:.0} s", lower_bound.as_secs_f64()),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
                continue;
            }
            let mut walls = Vec::new();
            let mut last = None;
            for _ in 0..args.runs {
                let run = one_run(n, c, &args, &sdk, &endpoint).await;
                walls.push(run.wall);
                last = Some(run);
            }
            let run = last.expect("at least one run");
            let expected_gone = (n as f64 * args.gone_share).round() as u64;
            let pruned = run.gone == expected_gone && run.rows_left == n - expected_gone as usize;
            let wall = stats::median(walls);
            rows.push(vec![
                n.to_string(),
                c.to_string(),
                stats::ms(wall),
                format!("{:.0}", n as f64 / wall.as_secs_f64()),
                format!("{:.2}", lower_bound.as_secs_f64() / wall.as_secs_f64()),
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
    stats::table(
        &[
            "N",
            "concurrency",
            "wall ms",
            "posts/s",
            "efficiency",
            "delivered / gone / pruning",
        ],
        &rows,
    );
    println!(
        "\n(the local @connections server saw {} posts)",
        stub.posts.load(std::sync::atomic::Ordering::Relaxed)
    );
}
