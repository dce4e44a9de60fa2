//! Fan-out: one frame to many connections, read page by page, posted with bounded concurrency,
//! retried when retrying can help, pruned when the connection is gone.

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::connection::ConnectionId;
use crate::ports::{
    ClientNotifier, ConnectionRepository, NotifyError, Page, PageToken, RepositoryError, Sleeper,
};
use crate::room::RoomName;
use crate::settings::Settings;
use crate::time::Timestamp;

/// Who a fan-out reaches.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    Everyone,
    Room(&'a RoomName),
}

/// What happened to each recipient of one fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: u64,
    /// Closed connections (410): their rows and memberships were removed.
    pub gone: u64,
    /// Posts that did not get through after every attempt allowed.
    pub failed: u64,
    /// The part of `failed` that no retry can fix (403, 413): a deploy or configuration fault.
    pub misconfigured: u64,
}

impl DeliveryReport {
    pub fn recipients(&self) -> u64 {
        self.delivered + self.gone + self.failed
    }

    pub(crate) fn add(mut self, outcome: PostOutcome) -> Self {
        match outcome {
            PostOutcome::Delivered => self.delivered += 1,
            PostOutcome::Gone => self.gone += 1,
            PostOutcome::Failed => self.failed += 1,
            PostOutcome::Misconfigured => {
                self.failed += 1;
                self.misconfigured += 1;
            }
        }
        self
    }
}

/// Reading recipients failed part-way: `report` says what was delivered before it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fan-out stopped after {} recipients: {source}", report.recipients())]
pub struct FanOutError {
    pub report: DeliveryReport,
    pub source: RepositoryError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostOutcome {
    Delivered,
    Gone,
    Failed,
    Misconfigured,
}

pub(crate) struct FanOut<'a> {
    pub repo: &'a dyn ConnectionRepository,
    pub notifier: &'a dyn ClientNotifier,
    pub sleeper: &'a dyn Sleeper,
    pub settings: &'a Settings,
}

impl FanOut<'_> {
    /// Posts `frame` to every live member of `audience` except `skip`.
    pub async fn broadcast(
        &self,
        audience: Audience<'_>,
        frame: &[u8],
        skip: Option<&ConnectionId>,
        now: Timestamp,
    ) -> Result<DeliveryReport, FanOutError> {
        let bound = self.settings.fanout_concurrency.get();
        let mut in_flight = FuturesUnordered::new();
        let mut report = DeliveryReport::default();
        let mut token: Option<PageToken> = None;
        loop {
            let page = match self.read_page(audience, token.take(), now).await {
                Ok(page) => page,
                Err(source) => {
                    // Finish what was started, then say how far we got.
                    while let Some(outcome) = in_flight.next().await {
                        report = report.add(outcome);
                    }
                    return Err(FanOutError { report, source });
                }
            };
            for id in page.items {
                if Some(&id) == skip {
                    continue;
                }
                // Keep at most `bound` posts in flight, across page boundaries too.
                while in_flight.len() >= bound {
                    if let Some(outcome) = in_flight.next().await {
                        report = report.add(outcome);
                    }
                }
                // The future owns the id: the page it came from is gone by the time it runs.
                in_flight.push(async move { self.deliver(&id, frame).await });
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        while let Some(outcome) = in_flight.next().await {
            report = report.add(outcome);
        }
        Ok(report)
    }

    async fn read_page(
        &self,
        audience: Audience<'_>,
        token: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        match audience {
            Audience::Everyone => self.repo.all_connections(token, now).await,
            Audience::Room(room) => self.repo.members_of(room, token, now).await,
        }
    }

    /// Posts to one connection: retries `Throttled` and `Transient` with jittered backoff, prunes
    /// on `Gone`, gives up at once on faults no retry can fix.
    pub async fn deliver(&self, to: &ConnectionId, frame: &[u8]) -> PostOutcome {
        let retry = &self.settings.retry;
        let mut attempt = 1;
        loop {
            match self.notifier.send(to, frame).await {
                Ok(()) => return PostOutcome::Delivered,
                Err(NotifyError::Gone) => {
                    self.prune(to).await;
                    return PostOutcome::Gone;
                }
                Err(e @ (NotifyError::Throttled | NotifyError::Transient(_))) => {
                    if attempt >= retry.max_attempts {
                        tracing::warn!(connectionId = %to, attempts = attempt, error = %e, "giving up on a post");
                        return PostOutcome::Failed;
                    }
                    self.sleeper.sleep(retry.pause(attempt)).await;
                    attempt += 1;
                }
                Err(e @ (NotifyError::Forbidden(_) | NotifyError::PayloadTooLarge)) => {
                    tracing::error!(connectionId = %to, error = %e, "configuration fault: check the management endpoint, stage and IAM policy");
                    return PostOutcome::Misconfigured;
                }
            }
        }
    }

    async fn prune(&self, id: &ConnectionId) {
        // A failed prune costs one more 410 next time, and TTL removes the row in the end: not
        // worth failing the fan-out for.
        if let Err(e) = self.repo.remove(id).await {
            tracing::warn!(connectionId = %id, error = %e, "could not remove a gone connection");
        }
    }
}
