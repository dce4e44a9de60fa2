//! The limit on what the stored buckets do not meter: `ping`, `whoami` and frames that do not
//! parse touch no storage, so they spend no stored token, yet each costs an invocation and a post
//! (its answer). Without a limit, one client could spend the account's `@connections` rate on
//! pings. The bucket is kept per connection in this instance's memory: no I/O, a few hundred
//! nanoseconds. An instance sees only the part of a connection's flood it is handed, so the limit
//! binds per instance: a flood spread over N concurrent instances gets N times through. Past the
//! limit, one `rate_limited` answer per wait goes back and the rest are dropped unanswered, so
//! refusals cannot spend the post budget either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::connection::ConnectionId;
use crate::rate_limit::{Bucket, RateLimit, Take};
use crate::time::Timestamp;

/// Connections remembered at once; past it the memory starts over (a client then gets a fresh
/// burst, once per this many other connections through the instance).
const REMEMBERED: usize = 10_000;

/// What the limiter decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmetered {
    /// Under the limit: answer it.
    Allowed,
    /// Over the limit: refuse it with `rate_limited` and this wait.
    Refused { retry_after: Duration },
    /// Over the limit, and already told when to come back: drop it without an answer.
    Dropped,
}

#[derive(Default)]
pub struct UnmeteredLimiter {
    seen: Mutex<HashMap<ConnectionId, Seen>>,
}

struct Seen {
    bucket: Bucket,
    /// Until when the last refusal told the client to wait: refusals before then go unanswered.
    told_until: Option<Timestamp>,
}

impl UnmeteredLimiter {
    pub fn check(&self, id: &ConnectionId, limit: RateLimit, now: Timestamp) -> Unmetered {
        if !limit.is_on() {
            return Unmetered::Allowed;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED && !seen.contains_key(id) {
            seen.clear();
        }
        let entry = seen.entry(id.clone()).or_insert_with(|| Seen {
            bucket: limit.full(now),
            told_until: None,
        });
        match limit.take(entry.bucket, now) {
            Take::Taken(next) => {
                entry.bucket = next;
                Unmetered::Allowed
            }
            Take::Refused { retry_after } => {
                if entry.told_until.is_some_and(|until| now < until) {
                    return Unmetered::Dropped;
                }
                entry.told_until = Some(now.saturating_add(retry_after));
                Unmetered::Refused { retry_after }
            }
        }
    }
}
