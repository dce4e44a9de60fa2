//! In-memory adapters: the local gateway's default store, and test doubles that can misbehave on cue.

mod notifier;
mod repository;

pub use notifier::RecordingNotifier;
pub use repository::InMemoryConnectionRepository;
