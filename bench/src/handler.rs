//! In-process throughput: the domain with in-memory adapters, no network.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use adapters::memory::InMemoryConnectionRepository;
use adapters::wiring;
use domain::{
    ClientNotifier, ConnectionId, ConnectionRepository, NotifyError, RoomName, Sender, Settings,
    Timestamp,
};

use crate::stats;

/// Counts frames instead of keeping them, so a long run does not measure memory growth.
#[derive(Default)]
struct CountingNotifier(AtomicU64);

#[async_trait::async_trait]
impl ClientNotifier for CountingNotifier {
    async fn send(&self, _to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

pub async fn run(messages: usize, room_size: usize, runs: usize) {
    let mut rates = Vec::new();
    let mut frames = 0;
    for _ in 0..runs {
        let repo = InMemoryConnectionRepository::default();
        let room = RoomName::parse("bench").expect("room");
        for i in 0..room_size {
            let connection = crate::forever(&format!("m{i}"));
            let id = connection.id.clone();
            repo.save(&connection).await.expect("save");
            repo.join(&id, &room, 50, Timestamp::from_millis(1))
                .await
                .expect("join");
        }
        let notifier = Arc::new(CountingNotifier::default());
        let service = wiring::service(repo, notifier.clone(), Settings::default());
        let sender = Sender::new(ConnectionId::parse("m0").expect("id"), None);
        let body = br#"{"action":"publish","room":"bench","data":{"text":"hello room"}}"#;
        let started = Instant::now();
        for _ in 0..messages {
            service
                .handle_message(&sender, body)
                .await
                .expect("publish");
        }
        let elapsed = started.elapsed();
        frames = notifier.0.load(Ordering::Relaxed);
        assert_eq!(
            frames as usize,
            messages * room_size,
            "every member got every message"
        );
        rates.push(messages as f64 / elapsed.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "in-process handler: publish to a room of {room_size}, {messages} messages, median of {runs} runs\n"
    );
    stats::table(
        &["messages/s", "frames/s", "frames in last run"],
        &[vec![
            format!("{median:.0}"),
            format!("{:.0}", median * room_size as f64),
            frames.to_string(),
        ]],
    );
}
