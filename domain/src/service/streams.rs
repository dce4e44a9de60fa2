//! The steps of room streams that actions share: replaying what a member missed (`join
//! {since}`) and reading a page of history (`history`).

use serde_json::value::RawValue;

use crate::ports::RoomAccess;
use crate::protocol::{self, ErrorCode, Frame};
use crate::room::RoomName;
use crate::stream::{LogPage, LoggedMessage, REPLAY_MAX_MESSAGES, ReadFrom, RoomLog, Seq};

use super::context::Cx;
use super::steps::{Refusal, Step};

/// Posts of one replay in flight at once: the member reorders by `seq`.
const REPLAY_CONCURRENCY: usize = 8;

/// A page of history as the `history` frame shows it: messages in `seq` order, and where the
/// next page starts in the read's direction.
pub struct HistoryPage {
    pub messages: Vec<Box<RawValue>>,
    pub next: Option<ReadFrom>,
}

impl Cx<'_> {
    /// The log, when history is on and the room policy lets the sender read what was published
    /// before it joined; otherwise why not.
    pub fn history_log(&self, room: &RoomName) -> Step<&dyn RoomLog> {
        let log = self
            .log
            .filter(|_| !self.settings.history_ttl.is_zero())
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::HistoryOff,
                    "this service keeps no history (HISTORY_TTL_SECONDS=0)",
                )
            })?;
        self.require_access(room, RoomAccess::ReadHistory)?;
        Ok(log)
    }

    /// After a `join {since}` and its `ack`: posts the sender every message of `room` after
    /// `since`, as it was sent live (same `id`, `seq`, `sentAt`), or a `reset` when that cannot
    /// bring it up to date (no history, `since` older than the history keeps, more than
    /// [`REPLAY_MAX_MESSAGES`] behind, or the invocation's time runs out).
    ///
    /// The member is already in the room: a message published during the replay reaches it live,
    /// and may come again in the replay, with its one `id` and `seq`. Every message after `since`
    /// arrives at least once; live ones may overtake replayed ones.
    pub async fn replay(&self, room: &RoomName, since: Seq) -> Step<()> {
        let Ok(log) = self.history_log(room) else {
            return self.reset(room, None).await;
        };
        let now = self.clock.now();
        let latest = log.latest(room).await?.unwrap_or(0);
        if latest <= since {
            return Ok(());
        }
        let oldest = log.read(room, ReadFrom::Oldest, 1, now).await?;
        let oldest = oldest.messages.first().map(|m| m.seq);
        // Something after `since` is no longer kept: the member would get a silent gap.
        let expired = oldest.is_none_or(|oldest| oldest > since.saturating_add(1));
        if expired || latest - since > REPLAY_MAX_MESSAGES {
            return self.reset(room, oldest).await;
        }
        let mut from = ReadFrom::After(since);
        loop {
            let LogPage { messages, more } = log
                .read(room, from, crate::stream::HISTORY_PAGE_MAX, now)
                .await?;
            let Some(last) = messages.last().map(|m| m.seq) else {
                return Ok(());
            };
            if !self.post_replayed(room, &messages).await {
                return self.reset(room, oldest).await;
            }
            if !more || last >= latest {
                return Ok(());
            }
            from = ReadFrom::After(last);
        }
    }

    /// Posts `messages` to the sender, a few at once; false when the invocation's time ran out
    /// first.
    async fn post_replayed(&self, room: &RoomName, messages: &[LoggedMessage]) -> bool {
        use futures::StreamExt;
        let fanout = self.fanout();
        if !fanout.may_start() {
            return false;
        }
        let mut frames: Vec<Vec<u8>> = Vec::with_capacity(messages.len());
        for message in messages {
            let Some(data) = message_data(message) else {
                continue;
            };
            if let Ok(frame) =
                protocol::encode(&message.frame(room, &data), self.settings.max_message_bytes)
            {
                frames.push(frame);
            }
        }
        // A FuturesUnordered filled by hand: `buffer_unordered` over borrowed frames is not
        // `Send` inside an async-trait action (a known limit of higher-ranked closures).
        let mut in_flight = futures::stream::FuturesUnordered::new();
        for frame in &frames {
            if in_flight.len() == REPLAY_CONCURRENCY {
                in_flight.next().await;
            }
            in_flight.push(fanout.deliver(&self.sender.id, frame));
        }
        while in_flight.next().await.is_some() {}
        true
    }

    async fn reset(&self, room: &RoomName, oldest_seq: Option<Seq>) -> Step<()> {
        self.reply(&Frame::Reset { room, oldest_seq }).await;
        Ok(())
    }

    /// Up to `limit` kept messages of `room` from `from` (going up, only those before `until`), as
    /// message frames in `seq` order, cut where the `history` frame would pass the message limit.
    pub async fn history_page(
        &self,
        log: &dyn RoomLog,
        room: &RoomName,
        from: ReadFrom,
        until: Option<Seq>,
        limit: usize,
    ) -> Step<HistoryPage> {
        let LogPage {
            mut messages,
            mut more,
        } = log.read(room, from, limit, self.clock.now()).await?;
        if let Some(until) = until {
            // Going up, the page stops before `until`: nothing past it is this request's.
            let before = messages.len();
            messages.retain(|message| message.seq < until);
            more &= messages.len() == before && messages.last().is_some_and(|m| m.seq + 1 < until);
        }
        let downward = matches!(from, ReadFrom::Before(_));
        // The frame's envelope, with the longest cursor, leaves this much for the messages.
        let envelope = protocol::encode(
            &Frame::History {
                room,
                messages: &[],
                cursor: Some(&protocol::cursor::encode(room, &format!("b{}", u64::MAX))),
                request_id: self.request_id,
            },
            self.settings.max_message_bytes,
        )
        .map(|bytes| bytes.len())
        .unwrap_or(self.settings.max_message_bytes);
        let mut budget = self.settings.max_message_bytes.saturating_sub(envelope);
        let mut frames = Vec::new();
        let mut cut = false;
        for message in &messages {
            let Some(data) = message_data(message) else {
                continue;
            };
            let frame = message.frame(room, &data);
            let Some(raw) = serde_json::value::to_raw_value(&frame).ok() else {
                continue;
            };
            // One comma between messages.
            let cost = raw.get().len() + 1;
            if cost > budget {
                cut = true;
                break;
            }
            budget -= cost;
            frames.push((message.seq, raw));
        }
        let last = frames.last().map(|(seq, _)| *seq);
        let next = match (more || cut, last) {
            (true, Some(seq)) if downward => Some(ReadFrom::Before(seq)),
            (true, Some(seq)) => Some(ReadFrom::After(seq)),
            // Not even one message fitted: an empty page can only say there is no more.
            _ => None,
        };
        if downward {
            frames.reverse();
        }
        Ok(HistoryPage {
            messages: frames.into_iter().map(|(_, raw)| raw).collect(),
            next,
        })
    }
}

/// The message's data as the raw JSON it was published as; `None` for a kept message that is
/// not JSON (a store that corrupted it): skipped rather than sent broken.
fn message_data(message: &LoggedMessage) -> Option<Box<RawValue>> {
    RawValue::from_string(message.data.clone()).ok()
}
