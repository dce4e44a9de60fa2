//! The rate-limit bucket as two attributes of the connection item, so every Lambda instance sees
//! the same bucket and it goes when the connection goes.
//!
//! A take is a consistent `GetItem` (the bucket and `expiresAt`), the bucket arithmetic, then an
//! `UpdateItem` conditioned on the bucket being what was read: of two concurrent takes only one
//! can write, the other reads again. A state never repeats (`bucketAt` never goes back, and at the
//! same `bucketAt` the tokens only go down), so "unchanged" really means nobody wrote in between.
//! A refusal writes nothing. Cost: 1 read per message, plus 1 write when it is let through.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use domain::rate_limit::{Bucket, Take};
use domain::{ConnectionId, RateLimit, RepositoryError, Timestamp, TokenDecision};

use super::batch::pause;
use super::codec::{self, BUCKET_AT, BUCKET_TOKENS, EXPIRES_AT, PK, number_value};
use super::errors::repository_error;

/// Rounds of read-decide-write before refusing: each lost round means another take of the same
/// connection won a token (or it disconnected), and the jittered pauses between rounds spread
/// the contenders out, so a bucket is empty, and every take refused without a write, long before.
const MAX_ROUNDS: u32 = 8;

pub(super) async fn take_token(
    client: &Client,
    table: &str,
    id: &ConnectionId,
    limit: RateLimit,
    now: Timestamp,
) -> Result<TokenDecision, RepositoryError> {
    for round in 1..=MAX_ROUNDS {
        let Some(stored) = read_bucket(client, table, id, now).await? else {
            return Ok(TokenDecision::NotConnected);
        };
        let next = match limit.take(stored.unwrap_or_else(|| limit.full(now)), now) {
            Take::Taken(next) => next,
            Take::Refused { retry_after } => return Ok(TokenDecision::Refused { retry_after }),
        };
        match write_bucket(client, table, id, stored, next, now).await {
            Ok(()) => return Ok(TokenDecision::Taken),
            // Another take (or a disconnect) wrote first: read again and decide.
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                pause(round).await
            }
            Err(e) => return Err(repository_error(e)),
        }
    }
    // The connection's own messages kept winning its bucket: it is sending faster than the limit
    // could ever allow. Refusing spends nothing, so the limit still holds; an error would only
    // turn a flood into "Internal server error" frames.
    Ok(TokenDecision::Refused {
        retry_after: limit.token_interval(),
    })
}

/// `None` when the connection is absent or expired; `Some(None)` when it has no bucket yet.
async fn read_bucket(
    client: &Client,
    table: &str,
    id: &ConnectionId,
    now: Timestamp,
) -> Result<Option<Option<Bucket>>, RepositoryError> {
    let projection = format!("#{EXPIRES_AT}, #{BUCKET_TOKENS}, #{BUCKET_AT}");
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(codec::connection_key(id)))
        .consistent_read(true)
        .set_expression_attribute_names(Some(codec::names_in(&[&projection])))
        .projection_expression(projection)
        .send()
        .await
        .map_err(repository_error)?;
    match out.item {
        Some(item) if codec::expires_at(&item)? > now => Ok(Some(codec::bucket_from(&item)?)),
        _ => Ok(None),
    }
}

/// Stores `next` if the bucket is still `stored` and the connection still there and live.
async fn write_bucket(
    client: &Client,
    table: &str,
    id: &ConnectionId,
    stored: Option<Bucket>,
    next: Bucket,
    now: Timestamp,
) -> Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError>> {
    let update = format!("SET #{BUCKET_TOKENS} = :tokens, #{BUCKET_AT} = :at");
    let unchanged = match stored {
        None => format!("attribute_not_exists(#{BUCKET_AT})"),
        Some(_) => format!("#{BUCKET_TOKENS} = :oldTokens AND #{BUCKET_AT} = :oldAt"),
    };
    let condition = format!("attribute_exists(#{PK}) AND #{EXPIRES_AT} > :now AND {unchanged}");
    let mut values = HashMap::from([
        (":tokens".to_string(), number_value(next.milli_tokens)),
        (":at".to_string(), number_value(next.updated_at.as_millis())),
        (":now".to_string(), number_value(now.as_millis())),
    ]);
    if let Some(old) = stored {
        values.insert(":oldTokens".into(), number_value(old.milli_tokens));
        values.insert(":oldAt".into(), number_value(old.updated_at.as_millis()));
    }
    client
        .update_item()
        .table_name(table)
        .set_key(Some(codec::connection_key(id)))
        .set_expression_attribute_names(Some(codec::names_in(&[&update, &condition])))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .send()
        .await?;
    Ok(())
}
