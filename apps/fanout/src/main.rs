//! Wiring only: configuration, the delivery worker built once, the SQS batch loop.

use std::sync::Arc;

use adapters::sqs::{QueuedMessage, Sources};
use domain::Timestamp;

/// Jobs of one SQS batch (up to 10) in flight at once, each with `FANOUT_CONCURRENCY` posts of
/// its own. Two, so that a small job (one connection, a short continuation) never waits behind a
/// whole page of a broadcast, while the posts stay within what the function's CPU keeps up with
/// (infra/serverless.yml, `fanout.memorySize`).
const JOBS_IN_PARALLEL: usize = 2;

// One thread, as for the other Lambdas: the work is waiting on the network, and the function has
// less than one vCPU (BENCHMARKS.md, "CPU per post").
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    adapters::telemetry::init_json();
    adapters::lambda::exit_code(run().await)
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let config = adapters::config::ServiceConfig::from_env()?;
    let worker = Arc::new(adapters::wiring::aws_worker(&config).await?);
    let sources = Sources::with_internal_queue(config.internal_queue_url.as_deref().unwrap_or(""));
    let run = move |message: QueuedMessage, deadline: Timestamp| {
        let worker = worker.clone();
        async move {
            let report = worker.handle(message.received(), deadline).await?;
            adapters::metrics::job_done(&report);
            Ok::<(), domain::delivery::WorkError>(())
        }
    };
    adapters::lambda::serve_delivery_jobs(JOBS_IN_PARALLEL, sources, run).await
}
