//! The DynamoDB `RoomLog`: a room's stream lives in the room's own partition, beside its
//! memberships, in items whose sort keys never start as a membership's does (`CONN#`), so no
//! member query reads them:
//!
//! - `ROOM#{room}` / `SEQ`: the counter, the last `seq` handed out (an atomic `ADD`);
//! - `ROOM#{room}` / `MSG#{seq:020}`: a kept message, until its `expiresAt` (and TTL);
//! - `ROOM#{room}` / `ID#{messageId}`: the `seq` a backend's message took, so a redelivery takes
//!   the same one.
//!
//! A client's publish costs two writes (the counter, the message: one write unit each up to 1 KB);
//! a backend's a consistent read and a transaction more. The counter is one item: DynamoDB's
//! per-partition limit (1 000 write units a second) bounds a room to about 500 publishes a
//! second with history on (docs/protocol.md, "Room streams"); past it DynamoDB throttles, and the
//! append is refused as busy, never reordered.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use domain::stream::{
    AppendError, Keep, LogPage, LoggedMessage, NewMessage, ReadFrom, RoomLog, Seq,
};
use domain::{RepositoryError, RoomName, Timestamp};

use super::codec::{self, EXPIRES_AT, PK, SEQ, SK, TTL, number_value, string_value};
use super::errors::repository_error;
use super::repository::DynamoSettings;

/// How long a refused append tells its publisher to wait.
const BUSY_RETRY: Duration = Duration::from_millis(200);
/// Query pages one read walks through past expired messages, at most.
const MAX_PAGES: usize = 20;

pub struct DynamoRoomLog {
    client: Client,
    settings: DynamoSettings,
}

impl DynamoRoomLog {
    pub fn new(client: Client, settings: DynamoSettings) -> Self {
        Self { client, settings }
    }

    fn table(&self) -> &str {
        &self.settings.table
    }

    /// The `seq` this message id took, if it still holds one.
    async fn seq_taken(
        &self,
        room: &RoomName,
        message: &NewMessage,
        now: Timestamp,
    ) -> Result<Option<Seq>, RepositoryError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(codec::stream_once_key(room, &message.id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(repository_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if codec::expires_at(&item)? <= now {
            return Ok(None);
        }
        codec::seq_of(&item).map(Some)
    }

    /// The next `seq` of `room`.
    async fn next_seq(&self, room: &RoomName) -> Result<Seq, AppendError> {
        let expression = format!("ADD #{SEQ} :one");
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(codec::stream_counter_key(room)))
            .update_expression(&expression)
            .set_expression_attribute_names(Some(codec::names_in(&[&expression])))
            .expression_attribute_values(":one", number_value(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| busy_or(repository_error(e)))?;
        let item = out.attributes.unwrap_or_default();
        Ok(codec::seq_of(&item)?)
    }
}

/// A throttled write is the room being over its rate: busy, for the publisher to retry.
fn busy_or(error: RepositoryError) -> AppendError {
    match error {
        RepositoryError::Throttled(_) => AppendError::Busy {
            retry_after: BUSY_RETRY,
        },
        other => AppendError::Repository(other),
    }
}

fn built<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, RepositoryError> {
    built.map_err(|e| RepositoryError::Unavailable(format!("could not build a request: {e}")))
}

#[async_trait]
impl RoomLog for DynamoRoomLog {
    async fn append(
        &self,
        room: &RoomName,
        message: &NewMessage,
        keep: Keep,
        now: Timestamp,
    ) -> Result<Seq, AppendError> {
        if keep.once_until.is_some()
            && let Some(seq) = self.seq_taken(room, message, now).await?
        {
            return Ok(seq);
        }
        let seq = self.next_seq(room).await?;
        let logged = LoggedMessage {
            id: message.id.clone(),
            seq,
            from: message.from.clone(),
            principal: message.principal.clone(),
            data: message.data.clone(),
            sent_at: message.sent_at,
        };
        let kept = keep
            .message_until
            .map(|until| codec::stream_message_item(room, &logged, until));
        let Some(once_until) = keep.once_until else {
            if let Some(item) = kept {
                self.client
                    .put_item()
                    .table_name(self.table())
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| busy_or(repository_error(e)))?;
            }
            return Ok(seq);
        };
        // The id claims this `seq` only if no other run claimed one first; the message is kept
        // with the claim, or not at all (its `seq` is then skipped, never repeated).
        let mut claim = codec::stream_once_key(room, &message.id);
        claim.insert(SEQ.into(), number_value(seq));
        claim.insert(EXPIRES_AT.into(), number_value(once_until.as_millis()));
        claim.insert(TTL.into(), number_value(once_until.as_secs_ceil()));
        let condition = format!("attribute_not_exists(#{PK}) OR #{EXPIRES_AT} <= :now");
        let claim = built(
            Put::builder()
                .table_name(self.table())
                .set_item(Some(claim))
                .condition_expression(&condition)
                .set_expression_attribute_names(Some(codec::names_in(&[&condition])))
                .expression_attribute_values(":now", number_value(now.as_millis()))
                .build(),
        )?;
        let mut items = vec![TransactWriteItem::builder().put(claim).build()];
        if let Some(item) = kept {
            let message = built(
                Put::builder()
                    .table_name(self.table())
                    .set_item(Some(item))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(message).build());
        }
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match written {
            Ok(_) => Ok(seq),
            Err(e) if e.code() == Some("TransactionCanceledException") && !is_throttle(&e) => {
                // Another run of the same message claimed first: its `seq` is the message's.
                self.seq_taken(room, message, now).await?.ok_or_else(|| {
                    AppendError::Repository(RepositoryError::Unavailable(
                        "a stream append was cancelled, and no run of its message took a place in the stream".into(),
                    ))
                })
            }
            Err(e) => Err(busy_or(repository_error(e))),
        }
    }

    async fn read(
        &self,
        room: &RoomName,
        from: ReadFrom,
        limit: usize,
        now: Timestamp,
    ) -> Result<LogPage, RepositoryError> {
        let (low, high, forward) = match from {
            ReadFrom::Oldest => (0, Seq::MAX, true),
            ReadFrom::After(seq) => (seq.saturating_add(1), Seq::MAX, true),
            ReadFrom::Before(seq) => (0, seq.saturating_sub(1), false),
        };
        if matches!(from, ReadFrom::Before(0)) || low > high {
            return Ok(LogPage::default());
        }
        let condition = format!("#{PK} = :pk AND #{SK} BETWEEN :low AND :high");
        let live = format!("#{EXPIRES_AT} > :now");
        let values = HashMap::from([
            (":pk".to_string(), string_value(codec::room_pk(room))),
            (
                ":low".to_string(),
                string_value(codec::stream_message_sk(low)),
            ),
            (
                ":high".to_string(),
                string_value(codec::stream_message_sk(high)),
            ),
            (":now".to_string(), number_value(now.as_millis())),
        ]);
        let mut messages = Vec::new();
        let mut start = None;
        // One more than asked: whether more follow.
        let want = limit.saturating_add(1);
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression(&condition)
                .filter_expression(&live)
                .set_expression_attribute_names(Some(codec::names_in(&[&condition, &live])))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(forward)
                .consistent_read(true)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(repository_error)?;
            for item in out.items.unwrap_or_default() {
                messages.push(codec::logged_message_from(&item)?);
            }
            start = out.last_evaluated_key;
            if messages.len() >= want || start.is_none() {
                break;
            }
        }
        let more = messages.len() > limit || (start.is_some() && messages.len() == limit);
        messages.truncate(limit);
        Ok(LogPage { messages, more })
    }

    async fn forget(
        &self,
        room: &RoomName,
        principal: &domain::Principal,
    ) -> Result<usize, RepositoryError> {
        // Every kept message of the room is read (the history is bounded by its retention), and
        // the principal's deleted: one page of up to 1 MB a round.
        let condition = format!("#{PK} = :pk AND begins_with(#{SK}, :msg)");
        let mine = format!("#{} = :principal", codec::PRINCIPAL);
        let values = HashMap::from([
            (":pk".to_string(), string_value(codec::room_pk(room))),
            (":msg".to_string(), string_value("MSG#")),
            (":principal".to_string(), string_value(principal.as_str())),
        ]);
        let mut keys = Vec::new();
        let mut start = None;
        for _ in 0..10_000 {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression(&condition)
                .filter_expression(&mine)
                .set_expression_attribute_names(Some(codec::names_in(&[&condition, &mine])))
                .set_expression_attribute_values(Some(values.clone()))
                .projection_expression(format!("#{PK}, #{SK}"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(repository_error)?;
            for item in out.items.unwrap_or_default() {
                keys.push(item);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        for key in &keys {
            self.client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(key.clone()))
                .send()
                .await
                .map_err(repository_error)?;
        }
        Ok(keys.len())
    }

    async fn latest(&self, room: &RoomName) -> Result<Option<Seq>, RepositoryError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(codec::stream_counter_key(room)))
            .consistent_read(true)
            .send()
            .await
            .map_err(repository_error)?;
        out.item.as_ref().map(codec::seq_of).transpose()
    }
}

fn is_throttle<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.message()
        .is_some_and(|m| m.contains("ThrottlingError") || m.contains("ProvisionedThroughput"))
}
