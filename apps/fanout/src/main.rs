//! Wiring only: configuration, clients built once, the delivery worker, the SQS batch loop.

use std::sync::Arc;

use adapters::dynamodb::DynamoConnectionRepository;
use adapters::sqs::SqsDeliveryQueue;
use adapters::wiring;
use domain::Timestamp;
use domain::delivery::{DeliveryJob, MessageId};

/// Jobs of one SQS batch (up to 10) in flight at once, each with `FANOUT_CONCURRENCY` posts of
/// its own. Two, so that a small job (one connection, a short continuation) never waits behind a
/// whole page of a broadcast, while the posts stay within what the function's CPU keeps up with
/// (infra/serverless.yml, `fanout.memorySize`).
const JOBS_IN_PARALLEL: usize = 2;

// One thread, as for the other Lambdas: the work is waiting on the network, and the function has
// less than one vCPU (BENCHMARKS.md, "CPU per post").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    adapters::telemetry::init_json();
    let config = adapters::config::ServiceConfig::from_env()?;
    let sdk = wiring::sdk_config().await;
    let repo =
        DynamoConnectionRepository::new(wiring::dynamodb_client(&sdk, None), config.dynamo.clone());
    let notifier = config.notifier_client.build(
        &sdk,
        &config.endpoint,
        adapters::apigateway::NotifierTimeouts::default(),
    )?;
    let queue = SqsDeliveryQueue::from_sdk(&sdk, adapters::sqs::queue_url_from_env()?, None);
    let parts = Arc::new((repo, notifier, queue));

    // LEAD: build the domain's `DeliveryWorker` from `parts` (store, notifier, queue for the
    // continuations) and `config.settings`, then run it here:
    //     let report = worker.run(&id, job, deadline).await.map_err(|e| e.to_string())?;
    //     adapters::metrics::delivery_continuations(report.<continuations enqueued>);
    //     adapters::metrics::... the report's posts, as `message_handled` records them;
    //     Ok(())
    // Until then every job fails, so SQS keeps it and finally dead-letters it: nothing is lost.
    let run = move |id: MessageId, _job: DeliveryJob, _deadline: Timestamp| {
        let _parts = parts.clone();
        async move { Err(format!("job {id}: the delivery worker is not wired in yet")) }
    };
    adapters::lambda::serve_delivery_jobs(JOBS_IN_PARALLEL, run).await
}
