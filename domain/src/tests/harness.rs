use crate::stream::{
    AppendError, Keep, LogPage, LoggedMessage, NewMessage, ReadFrom, RoomLog, Seq,
};
use crate::{RepositoryError, RoomName};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::ports::{Clock, MockClientNotifier, MockConnectionRepository, Sleeper};
pub use crate::testing::{id, room};
use crate::{ConnectionId, Principal, Sender, Settings, Timestamp, WebSocketService};

pub const NOW: u64 = 1_700_000_000_000;

pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(NOW)
    }
}

/// Returns at once and remembers every pause, so retry tests take no time.
#[derive(Default)]
pub struct RecordingSleeper {
    pub pauses: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        self.pauses.lock().unwrap().push(duration);
    }
}

pub fn sender(raw: &str) -> Sender {
    Sender::new(
        id(raw),
        Some(Principal::parse(format!("user-{raw}")).unwrap()),
    )
}

/// Every frame the mock notifier accepted: (recipient, decoded JSON); and what it was told to
/// prepare for.
#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<(String, Value)>>>, Arc<Mutex<Vec<Prepared>>>);

/// One `prepare`: for how many posts, and how many frames had been sent before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub posts: usize,
    pub after_frames: usize,
}

impl Outbox {
    pub fn record(&self, to: &ConnectionId, frame: &[u8]) {
        let json = serde_json::from_slice(frame).expect("frames are JSON");
        self.0.lock().unwrap().push((to.to_string(), json));
    }

    pub fn record_prepare(&self, posts: usize) {
        let after_frames = self.0.lock().unwrap().len();
        self.1.lock().unwrap().push(Prepared {
            posts,
            after_frames,
        });
    }

    /// Each `prepare` the notifier was given, in order.
    pub fn prepared(&self) -> Vec<Prepared> {
        self.1.lock().unwrap().clone()
    }

    pub fn frames_to(&self, to: &str) -> Vec<Value> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(t, _)| t == to)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The first frame of type `kind` sent to `to`.
    pub fn first_of_type(&self, to: &str, kind: &str) -> Value {
        self.frames_to(to)
            .into_iter()
            .find(|f| f["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} frame was sent to {to}"))
    }

    pub fn recipients_of_type(&self, kind: &str) -> Vec<String> {
        let all = self.0.lock().unwrap();
        let mut ids: Vec<String> = all
            .iter()
            .filter(|(_, f)| f["type"] == kind)
            .map(|(t, _)| t.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// A notifier that accepts everything and records it in the returned outbox.
pub fn accepting_notifier() -> (MockClientNotifier, Outbox) {
    let outbox = Outbox::default();
    let mut notifier = MockClientNotifier::new();
    let recorded = outbox.clone();
    notifier.expect_send().returning(move |to, frame| {
        recorded.record(to, frame);
        Ok(())
    });
    let recorded = outbox.clone();
    notifier.expect_prepare().returning(move |posts| {
        recorded.record_prepare(posts);
        posts
    });
    (notifier, outbox)
}

pub type TestService = WebSocketService<MockConnectionRepository, MockClientNotifier>;

pub fn service(
    repo: MockConnectionRepository,
    notifier: MockClientNotifier,
    settings: Settings,
) -> (TestService, Arc<RecordingSleeper>) {
    let sleeper = Arc::new(RecordingSleeper::default());
    let service = WebSocketService::new(
        repo,
        notifier,
        Arc::new(FixedClock),
        sleeper.clone(),
        settings,
    );
    (service, sleeper)
}

/// Handles one message `body` from connection `from`, failing the test on a service error.
pub async fn message(service: &TestService, from: &str, body: &str) -> crate::Handled {
    service
        .handle_message(&sender(from), body.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// A log of one process: appends in order, reads by range, every message kept forever unless
/// `oldest` says the ones below it expired.
#[derive(Default)]
pub struct FakeLog {
    pub messages: Mutex<Vec<LoggedMessage>>,
    pub keeps: Mutex<Vec<Keep>>,
    /// Messages below this `seq` have expired.
    pub oldest: Mutex<Seq>,
    pub busy: bool,
}

impl FakeLog {
    pub fn with(count: u64) -> Self {
        let log = Self::default();
        for seq in 1..=count {
            log.messages.lock().unwrap().push(LoggedMessage {
                id: crate::MessageId::parse(format!("m{seq}")).unwrap(),
                seq,
                from: Some(id("x")),
                principal: None,
                data: format!("{seq}"),
                sent_at: seq,
            });
        }
        log
    }
}

#[async_trait::async_trait]
impl RoomLog for FakeLog {
    async fn append(
        &self,
        _: &RoomName,
        message: &NewMessage,
        keep: Keep,
        _: Timestamp,
    ) -> Result<Seq, AppendError> {
        if self.busy {
            return Err(AppendError::Busy {
                retry_after: Duration::from_millis(250),
            });
        }
        self.keeps.lock().unwrap().push(keep);
        let mut messages = self.messages.lock().unwrap();
        if keep.once_until.is_some()
            && let Some(seen) = messages.iter().find(|m| m.id == message.id)
        {
            return Ok(seen.seq);
        }
        let seq = messages.len() as Seq + 1;
        messages.push(LoggedMessage {
            id: message.id.clone(),
            seq,
            from: message.from.clone(),
            principal: message.principal.clone(),
            data: message.data.clone(),
            sent_at: message.sent_at,
        });
        Ok(seq)
    }

    async fn read(
        &self,
        _: &RoomName,
        from: ReadFrom,
        limit: usize,
        _: Timestamp,
    ) -> Result<LogPage, RepositoryError> {
        let oldest = *self.oldest.lock().unwrap();
        let kept: Vec<LoggedMessage> = self
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.seq >= oldest)
            .cloned()
            .collect();
        let mut page: Vec<LoggedMessage> = match from {
            ReadFrom::Oldest => kept,
            ReadFrom::After(seq) => kept.into_iter().filter(|m| m.seq > seq).collect(),
            ReadFrom::Before(seq) => kept.into_iter().rev().filter(|m| m.seq < seq).collect(),
        };
        let more = page.len() > limit;
        page.truncate(limit);
        Ok(LogPage {
            messages: page,
            more,
        })
    }

    async fn forget(
        &self,
        _: &RoomName,
        principal: &crate::Principal,
    ) -> Result<usize, RepositoryError> {
        let mut messages = self.messages.lock().unwrap();
        let before = messages.len();
        messages.retain(|m| m.principal.as_ref() != Some(principal));
        Ok(before - messages.len())
    }

    async fn latest(&self, _: &RoomName) -> Result<Option<Seq>, RepositoryError> {
        Ok(self.messages.lock().unwrap().last().map(|m| m.seq))
    }
}
