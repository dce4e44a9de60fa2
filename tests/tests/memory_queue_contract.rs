//! The delivery queue contract against the in-memory queue.

use crate::queue_contract;

use std::time::Duration;

use adapters::memory::MemoryQueue;
use async_trait::async_trait;
use queue_contract::QueueUnderTest;

#[async_trait]
impl QueueUnderTest for MemoryQueue {
    type Queue = MemoryQueue;

    fn queue(&self) -> &MemoryQueue {
        self
    }

    async fn receive(&self) -> Vec<String> {
        let leases = MemoryQueue::receive(self, 10, Duration::from_millis(200)).await;
        leases
            .into_iter()
            .map(|lease| {
                let body = lease.body().to_owned();
                lease.ack();
                body
            })
            .collect()
    }

    async fn dead_letters(&self) -> Vec<(String, String)> {
        self.dead_letters_with_reasons()
            .into_iter()
            .map(|dead| (dead.body, dead.reason))
            .collect()
    }
}

async fn fresh() -> MemoryQueue {
    MemoryQueue::default()
}

queue_contract!(fresh);

#[test]
fn the_contracts_limit_is_the_memory_queues() {
    assert_eq!(
        queue_contract::MAX_JOB_BYTES,
        adapters::memory::MAX_JOB_BYTES
    );
}
