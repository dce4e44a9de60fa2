//! The rate-limit buckets: a connection's as two attributes of the connection item, so every
//! Lambda instance sees the same bucket and it goes when the connection goes; a principal's as the
//! same two attributes of an item of its own (`PRINCIPAL#{principal}` / `RATE`), expiring a day
//! after its last message.
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
use std::time::Duration;

use domain::{ConnectionId, Principal, RateLimit, RepositoryError, Timestamp, TokenDecision};

use super::batch::pause;
use super::codec::{self, BUCKET_AT, BUCKET_TOKENS, EXPIRES_AT, PK, TTL, number_value};
use super::errors::repository_error;

/// Rounds of read-decide-write before refusing: each lost round means another take of the same
/// connection won a token (or it disconnected), and the jittered pauses between rounds spread
/// the contenders out, so a bucket is empty, and every take refused without a write, long before.
const MAX_ROUNDS: u32 = 8;

/// Whose bucket a take spends.
#[derive(Clone, Copy)]
pub(super) enum Owner<'a> {
    /// On the connection item: absent or expired, the connection has no bucket.
    Connection(&'a ConnectionId),
    /// On an item of its own, created by the first take.
    Principal(&'a Principal),
}

/// How long a principal's bucket item outlives its last message: long after it has refilled.
const PRINCIPAL_BUCKET_KEPT: Duration = Duration::from_secs(24 * 60 * 60);

impl Owner<'_> {
    fn key(self) -> codec::Item {
        match self {
            Owner::Connection(id) => codec::connection_key(id),
            Owner::Principal(principal) => codec::principal_rate_key(principal),
        }
    }
}

pub(super) async fn take_token(
    client: &Client,
    table: &str,
    owner: Owner<'_>,
    limit: RateLimit,
    now: Timestamp,
) -> Result<TokenDecision, RepositoryError> {
    for round in 1..=MAX_ROUNDS {
        let Some(stored) = read_bucket(client, table, owner, now).await? else {
            return Ok(TokenDecision::NotConnected);
        };
        let next = match limit.take(stored.unwrap_or_else(|| limit.full(now)), now) {
            Take::Taken(next) => next,
            Take::Refused { retry_after } => return Ok(TokenDecision::Refused { retry_after }),
        };
        match write_bucket(client, table, owner, stored, next, now).await {
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

/// `None` when the connection is absent or expired; `Some(None)` when there is no bucket yet.
async fn read_bucket(
    client: &Client,
    table: &str,
    owner: Owner<'_>,
    now: Timestamp,
) -> Result<Option<Option<Bucket>>, RepositoryError> {
    let projection = format!("#{EXPIRES_AT}, #{BUCKET_TOKENS}, #{BUCKET_AT}");
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(owner.key()))
        .consistent_read(true)
        .set_expression_attribute_names(Some(codec::names_in(&[&projection])))
        .projection_expression(projection)
        .send()
        .await
        .map_err(repository_error)?;
    match (owner, out.item) {
        (Owner::Connection(_), Some(item)) if codec::expires_at(&item)? > now => {
            Ok(Some(codec::bucket_from(&item)?))
        }
        (Owner::Connection(_), _) => Ok(None),
        (Owner::Principal(_), Some(item)) => Ok(Some(codec::bucket_from(&item)?)),
        (Owner::Principal(_), None) => Ok(Some(None)),
    }
}

/// Stores `next` if the bucket is still `stored` (and a connection's is still there and live).
async fn write_bucket(
    client: &Client,
    table: &str,
    owner: Owner<'_>,
    stored: Option<Bucket>,
    next: Bucket,
    now: Timestamp,
) -> Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError>> {
    let unchanged = match stored {
        None => format!("attribute_not_exists(#{BUCKET_AT})"),
        Some(_) => format!("#{BUCKET_TOKENS} = :oldTokens AND #{BUCKET_AT} = :oldAt"),
    };
    let mut values = HashMap::from([
        (":tokens".to_string(), number_value(next.milli_tokens)),
        (":at".to_string(), number_value(next.updated_at.as_millis())),
    ]);
    let (update, condition) = match owner {
        Owner::Connection(_) => {
            values.insert(":now".into(), number_value(now.as_millis()));
            (
                format!("SET #{BUCKET_TOKENS} = :tokens, #{BUCKET_AT} = :at"),
                format!("attribute_exists(#{PK}) AND #{EXPIRES_AT} > :now AND {unchanged}"),
            )
        }
        Owner::Principal(_) => {
            let expires = now.saturating_add(PRINCIPAL_BUCKET_KEPT);
            values.insert(":expires".into(), number_value(expires.as_millis()));
            values.insert(":ttl".into(), number_value(expires.as_secs_ceil()));
            (
                format!(
                    "SET #{BUCKET_TOKENS} = :tokens, #{BUCKET_AT} = :at, #{EXPIRES_AT} = :expires, #{TTL} = :ttl"
                ),
                unchanged,
            )
        }
    };
    if let Some(old) = stored {
        values.insert(":oldTokens".into(), number_value(old.milli_tokens));
        values.insert(":oldAt".into(), number_value(old.updated_at.as_millis()));
    }
    client
        .update_item()
        .table_name(table)
        .set_key(Some(owner.key()))
        .set_expression_attribute_names(Some(codec::names_in(&[&update, &condition])))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .send()
        .await?;
    Ok(())
}
