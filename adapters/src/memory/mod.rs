//! In-memory adapters: the local gateway's default store, and test doubles that can misbehave on cue.

mod bans;
mod notifier;
mod queue;
mod repository;
mod room_log;

pub use bans::InMemoryBans;
pub use notifier::RecordingNotifier;
pub use queue::{DEFAULT_MAX_RECEIVES, DeadLetter, Lease, MAX_JOB_BYTES, MemoryQueue};
pub use repository::InMemoryConnectionRepository;
pub use room_log::InMemoryRoomLog;
