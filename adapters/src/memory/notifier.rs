use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::{ClientNotifier, ConnectionId, NotifyError};

/// A [`ClientNotifier`] that records every frame it accepts and answers with scripted errors for
/// chosen connections. It also records the most sends it ever had in flight at once.
#[derive(Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<(ConnectionId, Vec<u8>)>>,
    disconnected: Mutex<Vec<ConnectionId>>,
    scripts: Mutex<HashMap<ConnectionId, Script>>,
    latency: Option<Duration>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

enum Script {
    /// These answers first, one per send, then success.
    Queue(VecDeque<NotifyError>),
    /// This answer every time.
    Always(NotifyError),
}

impl RecordingNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every send waits this long, like a real post over the network.
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency: Some(latency),
            ..Self::default()
        }
    }

    /// `to` gets `error` on every send from now on.
    pub fn always_answer(&self, to: &ConnectionId, error: NotifyError) {
        self.scripts().insert(to.clone(), Script::Always(error));
    }

    /// `to` gets these errors on its next sends, one each, then success.
    pub fn answer_next(&self, to: &ConnectionId, errors: impl IntoIterator<Item = NotifyError>) {
        self.scripts()
            .insert(to.clone(), Script::Queue(errors.into_iter().collect()));
    }

    pub fn sent(&self) -> Vec<(ConnectionId, Vec<u8>)> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn sent_to(&self, to: &ConnectionId) -> Vec<Vec<u8>> {
        self.sent()
            .into_iter()
            .filter(|(id, _)| id == to)
            .map(|(_, frame)| frame)
            .collect()
    }

    pub fn disconnected(&self) -> Vec<ConnectionId> {
        self.disconnected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    fn scripts(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Script>> {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn scripted_answer(&self, to: &ConnectionId) -> Option<NotifyError> {
        match self.scripts().get_mut(to)? {
            Script::Always(error) => Some(error.clone()),
            Script::Queue(queue) => queue.pop_front(),
        }
    }
}

#[async_trait]
impl ClientNotifier for RecordingNotifier {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(error) = self.scripted_answer(to) {
            return Err(error);
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.clone(), frame.to_vec()));
        Ok(())
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        if let Some(error) = self.scripted_answer(id) {
            return Err(error);
        }
        self.disconnected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        Ok(())
    }
}
