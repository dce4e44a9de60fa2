//! The open sockets, and the two things anyone may do to one: post a frame, or close it. The
//! `@connections` API and the in-process notifier both go through here, so they follow one set
//! of rules: 410 for an unknown id or a socket that is closing, 413 above the message limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use domain::{ClientNotifier, ConnectionId, NotifyError};

use crate::outbox::Outbox;

/// An open socket, as `GET @connections/{id}` describes it.
pub(crate) struct OpenSocket {
    pub outbox: Arc<Outbox>,
    pub connected_at: time::OffsetDateTime,
    pub last_active_at: time::OffsetDateTime,
    pub source_ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    Gone,
    TooLarge,
}

#[derive(Default)]
pub struct Sockets(Mutex<HashMap<ConnectionId, OpenSocket>>);

impl Sockets {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<ConnectionId, OpenSocket>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Queues `data` as one frame: text when it is UTF-8, binary otherwise, as API Gateway does.
    /// A socket whose queue is full gets closed, and the post 410, as if it were already gone:
    /// the poster prunes it, as it would a client that vanished.
    pub fn post(&self, id: &ConnectionId, data: &[u8], max_bytes: usize) -> Result<(), PostError> {
        if data.len() > max_bytes {
            return Err(PostError::TooLarge);
        }
        let outbox = self.outbox(id)?;
        outbox.push(data).map_err(|_| PostError::Gone)
    }

    /// Closes the socket as `DELETE @connections/{id}` does: after what was posted before.
    pub fn close(&self, id: &ConnectionId) -> Result<(), PostError> {
        let outbox = self.outbox(id)?;
        outbox
            .close_after_queued((1000, "Connection deleted"))
            .map_err(|_| PostError::Gone)
    }

    fn outbox(&self, id: &ConnectionId) -> Result<Arc<Outbox>, PostError> {
        let sockets = self.lock();
        let socket = sockets.get(id).ok_or(PostError::Gone)?;
        Ok(socket.outbox.clone())
    }
}

/// Posts straight to the socket registry, skipping the HTTP round trip to our own `@connections`
/// API. Faster under load (BENCHMARKS.md, "The local gateway"), but it does not exercise
/// `ApiGatewayNotifier`: opt in with `--notifier in-process`.
pub struct InProcessNotifier {
    pub sockets: Arc<Sockets>,
    pub max_message_bytes: usize,
}

#[async_trait]
impl ClientNotifier for InProcessNotifier {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        self.sockets
            .post(to, frame, self.max_message_bytes)
            .map_err(notify_error)
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        self.sockets.close(id).map_err(notify_error)
    }
}

fn notify_error(e: PostError) -> NotifyError {
    match e {
        PostError::Gone => NotifyError::Gone,
        PostError::TooLarge => NotifyError::PayloadTooLarge,
    }
}
