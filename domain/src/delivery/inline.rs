//! Inline first, queue for the rest: how a broadcast splits between the sender's invocation and
//! the delivery queue.

use crate::connection::ConnectionId;
use crate::fanout::{Audience, FanOut, FanOutError};
use crate::ports::PageToken;

use super::job::DeliveryJob;

/// Recipients per hand-over job: 100 ids of at most 128 characters are under 14 KB, so a job
/// stays far below the queue's 256 KB with the largest frame (128 KB) in it.
pub const RECIPIENTS_PER_JOB: usize = 100;

/// Most pages read looking for `inline_recipients` live ones: pages emptied by expired rows
/// must not keep the sender's invocation reading. What is not read by then is queued.
const MAX_INLINE_PAGES: usize = 16;

/// A broadcast's audience, split.
pub(crate) struct Split {
    /// Posted by the sender's invocation.
    pub inline: Vec<ConnectionId>,
    /// Everything else: hand-overs of ids already read, then a job from the cursor after them.
    pub jobs: Vec<DeliveryJob>,
}

/// Reads the audience until more than `inline_max` recipients are known (or it ends), keeps the
/// first `inline_max` and turns the rest into jobs of `job`'s message. A read the deadline cuts
/// off leaves the rest of the audience to a job from where it stopped.
pub(crate) async fn split(
    fanout: &FanOut<'_>,
    audience: Audience<'_>,
    job: &DeliveryJob,
    inline_max: usize,
) -> Result<Split, FanOutError> {
    let mut read: Vec<ConnectionId> = Vec::new();
    // Where the unread rest starts: `Some(None)` is the whole audience, `None` nothing.
    let mut unread: Option<Option<PageToken>> = Some(None);
    for _ in 0..MAX_INLINE_PAGES {
        let Some(from) = unread.clone() else { break };
        if read.len() > inline_max || !fanout.may_start() {
            break;
        }
        let Some(page) = fanout.within(fanout.read_page(audience, from)).await else {
            break;
        };
        let page = page.map_err(|source| FanOutError {
            report: Default::default(),
            source,
        })?;
        read.extend(
            page.items
                .into_iter()
                .filter(|id| Some(id) != job.skip.as_ref()),
        );
        unread = page.next.map(Some);
    }
    let rest = read.split_off(inline_max.min(read.len()));
    let mut jobs: Vec<DeliveryJob> = rest
        .chunks(RECIPIENTS_PER_JOB)
        .map(|ids| job.handed_over_to(ids.to_vec()))
        .collect();
    jobs.extend(unread.map(|from| match from {
        Some(cursor) => job.continued_at(cursor),
        None => job.clone(),
    }));
    Ok(Split { inline: read, jobs })
}
