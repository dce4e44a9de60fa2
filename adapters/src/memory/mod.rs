//! In-memory adapters: the local gateway's default store, and test doubles that can misbehave on cue.

mod notifier;
mod queue;
mod repository;

pub use notifier::RecordingNotifier;
pub use queue::{DEFAULT_MAX_RECEIVES, DeadLetter, Lease, MAX_JOB_BYTES, MemoryQueue};
pub use repository::InMemoryConnectionRepository;
