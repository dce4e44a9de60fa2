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
/// first `inline_max` and turns the rest into jobs of `job`'s message.
pub(crate) async fn split(
    fanout: &FanOut<'_>,
    audience: Audience<'_>,
    job: &DeliveryJob,
    inline_max: usize,
) -> Result<Split, FanOutError> {
    let mut read: Vec<ConnectionId> = Vec::new();
    let mut next: Option<PageToken> = None;
    for page_number in 0..MAX_INLINE_PAGES {
        let page = fanout
            .read_page(audience, next.take())
            .await
            .map_err(|source| FanOutError {
                report: Default::default(),
                source,
            })?;
        read.extend(
            page.items
                .into_iter()
                .filter(|id| Some(id) != job.skip.as_ref()),
        );
        next = page.next;
        if read.len() > inline_max || next.is_none() || page_number + 1 == MAX_INLINE_PAGES {
            break;
        }
    }
    let rest = read.split_off(inline_max.min(read.len()));
    let mut jobs: Vec<DeliveryJob> = rest
        .chunks(RECIPIENTS_PER_JOB)
        .map(|ids| job.handed_over_to(ids.to_vec()))
        .collect();
    jobs.extend(next.map(|cursor| job.continued_at(cursor)));
    Ok(Split { inline: read, jobs })
}
