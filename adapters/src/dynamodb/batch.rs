//! `BatchWriteItem` 25 requests at a time, resending what DynamoDB leaves unprocessed, bounded.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::WriteRequest;
use domain::RepositoryError;

use super::errors::repository_error;

/// BatchWriteItem's limit.
pub const BATCH: usize = 25;
/// Bounded retries for unprocessed batch items and conflicting transactions.
pub const MAX_ROUNDS: u32 = 8;

/// Sends `requests` in batches of 25. DynamoDB may leave part of a batch unprocessed (throttling,
/// a hot partition): those are resent after a jittered pause, at most `MAX_ROUNDS` rounds a batch.
pub async fn write_all(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    what: &str,
) -> Result<(), RepositoryError> {
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let chunk: Vec<WriteRequest> = requests.by_ref().take(BATCH).collect();
        write_one_batch(client, table, chunk, what).await?;
    }
    Ok(())
}

async fn write_one_batch(
    client: &Client,
    table: &str,
    mut requests: Vec<WriteRequest>,
    what: &str,
) -> Result<(), RepositoryError> {
    let mut round = 0;
    while !requests.is_empty() {
        round += 1;
        if round > MAX_ROUNDS {
            return Err(RepositoryError::Throttled(format!(
                "{} {what} still unprocessed after {MAX_ROUNDS} rounds",
                requests.len()
            )));
        }
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(repository_error)?;
        requests = out
            .unprocessed_items
            .and_then(|mut left| left.remove(table))
            .unwrap_or_default();
        if !requests.is_empty() {
            pause(round).await;
        }
    }
    Ok(())
}

/// Jittered pause between rounds of unprocessed items or conflicting transactions.
pub async fn pause(round: u32) {
    let ceiling = 20u64.saturating_mul(1 << round.min(6));
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ceiling))).await;
}
