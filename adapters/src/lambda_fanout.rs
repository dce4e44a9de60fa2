//! The fan-out Lambda's runtime loop: SQS events of delivery jobs in, partial batch responses out.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::Timestamp;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

use crate::lambda::{LambdaMetrics, measured};
use crate::sqs::{QueuedMessage, Sources, handle_batch};

/// The fan-out function's name in metrics.
pub const FANOUT_FUNCTION: &str = "fanout";

/// Runs `run` on every message SQS hands this function (from the backend queue or the service's
/// internal one, told apart by `sources`), at most `jobs_in_parallel` at a time, with the
/// invocation's deadline from the Lambda context. `run` is the delivery worker; it must return
/// before the deadline (it hands over what is left).
pub async fn serve_delivery_jobs<F, Fut, E>(
    jobs_in_parallel: usize,
    sources: Sources,
    run: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(QueuedMessage, Timestamp) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let metrics = Arc::new(LambdaMetrics::from_env(FANOUT_FUNCTION)?);
    let (run, sources) = (Arc::new(run), Arc::new(sources));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (run, metrics, sources) = (run.clone(), metrics.clone(), sources.clone());
        async move {
            let request_id = event.context.request_id.clone();
            let deadline = Timestamp::from_millis(event.context.deadline);
            let work = deliver_batch(
                event.payload,
                deadline,
                jobs_in_parallel,
                &sources,
                run.as_ref(),
            );
            measured(&metrics, &request_id, std::io::stdout(), work).await
        }
    }))
    .await
}

/// One invocation: the batch's jobs run, counted, and answered with the failed ones. An event
/// whose records cannot be told apart fails whole (SQS then delivers the batch again).
pub async fn deliver_batch<F, Fut, E>(
    event: SqsEvent,
    deadline: Timestamp,
    jobs_in_parallel: usize,
    sources: &Sources,
    run: &F,
) -> Result<SqsBatchResponse, Diagnostic>
where
    F: Fn(QueuedMessage, Timestamp) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let outcome = handle_batch(event, deadline, jobs_in_parallel, sources, run)
        .await
        .map_err(|e| {
            tracing::error!(errorType = "BadEvent", error = %e, "invocation failed");
            Diagnostic {
                error_type: "BadEvent".to_string(),
                error_message: e.to_string(),
            }
        })?;
    crate::metrics::delivery_jobs(outcome.jobs, outcome.failed);
    Ok(outcome.response)
}
