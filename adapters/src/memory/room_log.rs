//! The in-memory `RoomLog`: each room's counter, its kept messages and its once-ids in a mutex,
//! behaving as the DynamoDB adapter does (the contract suite checks both), and, when told the
//! rate one room sustains, refusing appends past it as busy, as DynamoDB's throttling does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use domain::rate_limit::{Bucket, RateLimit, Take};
use domain::stream::{
    AppendError, Keep, LogPage, LoggedMessage, NewMessage, ReadFrom, RoomLog, Seq,
};
use domain::{MessageId, RepositoryError, RoomName, Timestamp};

#[derive(Default)]
struct Stream {
    last: Seq,
    /// Kept messages by `seq`, each with when it stops being kept.
    messages: BTreeMap<Seq, (LoggedMessage, Timestamp)>,
    /// The `seq` each once-id took, until when.
    once: HashMap<MessageId, (Seq, Timestamp)>,
    /// How many once-ids were left by the last sweep of the expired ones.
    once_after_sweep: usize,
    bucket: Option<Bucket>,
}

pub struct InMemoryRoomLog {
    rooms: Mutex<HashMap<RoomName, Stream>>,
    /// Appends one room sustains; `RateLimit::OFF`: no limit.
    limit: RateLimit,
}

impl Default for InMemoryRoomLog {
    /// No limit on a room's rate.
    fn default() -> Self {
        Self::with_room_limit(RateLimit::OFF)
    }
}

impl InMemoryRoomLog {
    /// Refuses appends to one room past `per_second` (bursts of `burst`), as the store the
    /// Lambdas use would throttle them.
    pub fn with_room_limit(limit: RateLimit) -> Self {
        Self {
            rooms: Mutex::default(),
            limit,
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Stream>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl RoomLog for InMemoryRoomLog {
    async fn append(
        &self,
        room: &RoomName,
        message: &NewMessage,
        keep: Keep,
        now: Timestamp,
    ) -> Result<Seq, AppendError> {
        let mut rooms = self.rooms();
        let stream = rooms.entry(room.clone()).or_default();
        if keep.once_until.is_some()
            && let Some((seq, until)) = stream.once.get(&message.id)
            && *until > now
        {
            return Ok(*seq);
        }
        if self.limit.is_on() {
            let bucket = stream.bucket.unwrap_or_else(|| self.limit.full(now));
            match self.limit.take(bucket, now) {
                Take::Taken(bucket) => stream.bucket = Some(bucket),
                Take::Refused { retry_after } => {
                    return Err(AppendError::Busy {
                        retry_after: retry_after.max(Duration::from_millis(1)),
                    });
                }
            }
        }
        stream.last += 1;
        let seq = stream.last;
        if let Some(until) = keep.message_until {
            let logged = LoggedMessage {
                id: message.id.clone(),
                seq,
                from: message.from.clone(),
                principal: message.principal.clone(),
                data: message.data.clone(),
                sent_at: message.sent_at,
            };
            stream.messages.insert(seq, (logged, until));
        }
        if let Some(until) = keep.once_until {
            stream.once.insert(message.id.clone(), (seq, until));
        }
        // What storage's TTL would have deleted by now, so memory stays bounded on a long run,
        // at a cost per append that does not grow with what is kept: messages are kept in `seq`
        // order with one retention, so the expired ones are the oldest; once-ids are swept when
        // they have doubled since the last sweep.
        while let Some((_, (_, until))) = stream.messages.first_key_value()
            && *until <= now
        {
            stream.messages.pop_first();
        }
        if stream.once.len() >= 2 * stream.once_after_sweep.max(32) {
            stream.once.retain(|_, (_, until)| *until > now);
            stream.once_after_sweep = stream.once.len();
        }
        Ok(seq)
    }

    async fn read(
        &self,
        room: &RoomName,
        from: ReadFrom,
        limit: usize,
        now: Timestamp,
    ) -> Result<LogPage, RepositoryError> {
        let rooms = self.rooms();
        let Some(stream) = rooms.get(room) else {
            return Ok(LogPage::default());
        };
        let live = |(_, (message, until)): (&Seq, &(LoggedMessage, Timestamp))| {
            (*until > now).then(|| message.clone())
        };
        let mut messages: Vec<LoggedMessage> = match from {
            ReadFrom::Oldest => stream
                .messages
                .iter()
                .filter_map(live)
                .take(limit + 1)
                .collect(),
            ReadFrom::After(seq) => stream
                .messages
                .range(seq.saturating_add(1)..)
                .filter_map(live)
                .take(limit + 1)
                .collect(),
            ReadFrom::Before(seq) => stream
                .messages
                .range(..seq)
                .rev()
                .filter_map(live)
                .take(limit + 1)
                .collect(),
        };
        let more = messages.len() > limit;
        messages.truncate(limit);
        Ok(LogPage { messages, more })
    }

    async fn forget(
        &self,
        room: &RoomName,
        principal: &domain::Principal,
    ) -> Result<usize, RepositoryError> {
        let mut rooms = self.rooms();
        let Some(stream) = rooms.get_mut(room) else {
            return Ok(0);
        };
        let before = stream.messages.len();
        stream
            .messages
            .retain(|_, (message, _)| message.principal.as_ref() != Some(principal));
        Ok(before - stream.messages.len())
    }

    async fn latest(&self, room: &RoomName) -> Result<Option<Seq>, RepositoryError> {
        Ok(self
            .rooms()
            .get(room)
            .map(|stream| stream.last)
            .filter(|last| *last > 0))
    }
}
