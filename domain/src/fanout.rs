//! Fan-out: one frame to many connections, read page by page, posted with bounded concurrency,
//! retried when retrying can help, pruned when the connection is gone.

mod window;

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;

pub(crate) use window::SharedWindow;

pub(crate) use crate::deadline::Deadline;

use crate::connection::{ConnectionId, Principal};
use crate::ports::{
    ClientNotifier, ConnectionRepository, NotifyError, Page, PageToken, Removed, RepositoryError,
    Sleeper,
};
use crate::protocol::{self, Frame, PresenceEvent};
use crate::room::RoomName;
use crate::settings::Settings;
use crate::time::Timestamp;

/// Most departures one fan-out announces, after its posts (each is at most
/// `max_rooms_per_connection` rooms of at most `presence_max_members` members).
const MAX_DEPARTURES_ANNOUNCED: usize = 16;

/// Most pages read to count a room for presence; a small room fits in one, unless expired rows
/// fill it.
const PRESENCE_MAX_PAGES: usize = 16;

/// What a fan-out's posts came to: the counts, and the departures to announce once they are done.
#[derive(Default)]
struct Tally {
    report: DeliveryReport,
    departed: Vec<Departure>,
}

impl Tally {
    fn add(&mut self, (posted, departed): (Posted, Option<Departure>)) {
        self.report = self.report.add(posted);
        self.departed.extend(departed);
    }
}

/// A connection that left rooms, to be announced to them.
#[derive(Debug, Clone)]
pub(crate) struct Departure {
    pub id: ConnectionId,
    pub principal: Option<Principal>,
    pub rooms: Vec<RoomName>,
    /// Whether the prune found a connection row to delete (false: it was gone already).
    pub found_connection: bool,
}

impl Departure {
    /// What `remove` deleted: the rooms, and the principal from the deleted row.
    pub fn of(id: &ConnectionId, removed: Removed) -> Self {
        Self {
            id: id.clone(),
            found_connection: removed != Removed::default(),
            principal: removed.connection.and_then(|c| c.principal),
            rooms: removed.rooms,
        }
    }
}

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
    /// Recipients no later attempt can reach: a deploy fault (403, 413: see `misconfigured`),
    /// or posts that kept failing where there is no queue to try them again later.
    pub failed: u64,
    /// The part of `failed` that no retry can fix (403, 413): a deploy or configuration fault.
    pub misconfigured: u64,
    /// `@connections` answers of 429 (each one retried, or counted in `unfinished` on the last
    /// try): the share of posts throttled is what says the account's API Gateway quota is too low.
    pub throttled: u64,
    /// Posts sent again after a throttle or a transient fault.
    pub retried: u64,
    /// Posts that did not get through in this invocation but may later: their retries were spent
    /// on 429s and 5xx, or the deadline left no time for the next retry. The caller hands them to
    /// the delivery queue (`requeued`), or counts them `failed` when it has none.
    pub unfinished: u64,
    /// Recipients handed to the delivery queue for a later attempt: the unfinished ones, and
    /// those the deadline left no time to start.
    pub requeued: u64,
    /// Recipients given up on: their message was handed over `MAX_ATTEMPTS` times and never got
    /// through; dead-lettered with their job, counted, alarmed.
    pub given_up: u64,
}

impl DeliveryReport {
    /// Recipients this fan-out posted to, whatever came of it.
    pub fn recipients(&self) -> u64 {
        self.delivered + self.gone + self.failed + self.unfinished
    }

    pub(crate) fn add(mut self, posted: Posted) -> Self {
        self.throttled += posted.throttled;
        self.retried += posted.retried;
        match posted.outcome {
            PostOutcome::Delivered => self.delivered += 1,
            PostOutcome::Gone => self.gone += 1,
            PostOutcome::Misconfigured => {
                self.failed += 1;
                self.misconfigured += 1;
            }
            PostOutcome::Unfinished => self.unfinished += 1,
        }
        self
    }

    /// With no queue to try them again, unfinished posts are failed ones.
    pub(crate) fn unfinished_failed(mut self) -> Self {
        self.failed += self.unfinished;
        self.unfinished = 0;
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

/// What [`FanOut::post_listed`] did: the counts, and the recipients still to reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    pub report: DeliveryReport,
    /// Never started, because the deadline was near: in the order given, the skipped
    /// connection left out.
    pub unstarted: Vec<ConnectionId>,
    /// Started, but not delivered in this invocation (`DeliveryReport::unfinished`).
    pub unfinished: Vec<ConnectionId>,
}

/// Where a dispatch gets its recipients: ids already read, then pages from `unread`
/// (`Some(None)`: from the start; `None`: nothing more to read).
struct Source {
    ready: VecDeque<ConnectionId>,
    unread: Option<Option<PageToken>>,
}

struct Dispatched {
    report: DeliveryReport,
    unstarted: Vec<ConnectionId>,
    unfinished: Vec<ConnectionId>,
    read_error: Option<RepositoryError>,
}

enum Event<P> {
    Posted(P),
    Read(Result<Page<ConnectionId>, RepositoryError>),
}

/// Waits for whichever comes first: a post finishing or the page read. The caller never waits
/// with neither in progress.
async fn next_event<P, F: Future<Output = P>>(
    in_flight: &mut FuturesUnordered<F>,
    reading: &mut Option<BoxFuture<'_, Result<Page<ConnectionId>, RepositoryError>>>,
) -> Event<P> {
    futures::future::poll_fn(|cx| {
        if let Some(read) = reading.as_mut()
            && let Poll::Ready(page) = read.as_mut().poll(cx)
        {
            *reading = None;
            return Poll::Ready(Event::Read(page));
        }
        match in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(posted)) => Poll::Ready(Event::Posted(posted)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// One post's outcome, and what it took to get there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Posted {
    pub outcome: PostOutcome,
    pub throttled: u64,
    pub retried: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostOutcome {
    Delivered,
    Gone,
    /// 403, 413 or another answer no retry can fix.
    Misconfigured,
    /// Not delivered now, but a later attempt may: the retries were spent on 429s and 5xx, or
    /// the deadline left no time for the next one.
    Unfinished,
}

pub(crate) struct FanOut<'a> {
    pub repo: &'a dyn ConnectionRepository,
    pub notifier: &'a dyn ClientNotifier,
    pub sleeper: &'a dyn Sleeper,
    pub settings: &'a Settings,
    /// When this fan-out reads: rows that expire later are live.
    pub now: Timestamp,
    /// The invocation's end: no post, retry or prune is started that could end within
    /// `job_safety_margin` of it, and every awaited call is bounded by it.
    pub deadline: Option<Deadline<'a>>,
    /// A worker's posts-in-flight window, kept across its jobs; `None`: one per fan-out.
    pub window: Option<&'a SharedWindow>,
}

impl FanOut<'_> {
    /// Posts `frame` to every live member of `audience` except `skip`, reading each next page
    /// while the current one is posting.
    pub async fn broadcast(
        &self,
        audience: Audience<'_>,
        frame: &[u8],
        skip: Option<&ConnectionId>,
    ) -> Result<DeliveryReport, FanOutError> {
        let source = Source {
            ready: VecDeque::new(),
            unread: Some(None),
        };
        let dispatched = self.dispatch(audience, frame, skip, source).await;
        match dispatched.read_error {
            None => Ok(dispatched.report),
            Some(source) => Err(FanOutError {
                report: dispatched.report,
                source,
            }),
        }
    }

    /// Posts `frame` to `recipients` (already read from `audience`) except `skip`; what the
    /// deadline left no time to start is returned untouched, and what did not get through yet is
    /// returned too, for the caller to hand over.
    pub async fn post_listed(
        &self,
        audience: Audience<'_>,
        frame: &[u8],
        skip: Option<&ConnectionId>,
        recipients: Vec<ConnectionId>,
    ) -> Listed {
        let source = Source {
            ready: recipients.into(),
            unread: None,
        };
        let dispatched = self.dispatch(audience, frame, skip, source).await;
        Listed {
            report: dispatched.report,
            unstarted: dispatched.unstarted,
            unfinished: dispatched.unfinished,
        }
    }

    /// Tells the notifier that `posts` posts (at most the window's worth in flight) start once
    /// the caller's current wait is over, so that it may open their connections meanwhile.
    pub fn prepare(&self, posts: usize) -> usize {
        let in_flight = self
            .window
            .map_or(self.settings.fanout_concurrency.get(), SharedWindow::limit);
        match posts.min(in_flight) {
            0 => 0,
            posts => self.notifier.prepare(posts),
        }
    }

    /// Whether a post (or a page read) may start now: always, without a deadline.
    pub fn may_start(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| deadline.leaves(Duration::ZERO))
    }

    /// `work`, bounded by the deadline when there is one (`None`: the margin came first).
    pub async fn within<F: Future>(&self, work: F) -> Option<F::Output> {
        match &self.deadline {
            Some(deadline) => deadline.bound(work).await,
            None => Some(work.await),
        }
    }

    /// The one posting loop: at most `window.limit()` posts in flight (across page boundaries
    /// too), the next page read while posts run, departures announced once no post is in flight
    /// (announcing while posting would multiply the bound), nothing started inside the margin.
    async fn dispatch(
        &self,
        audience: Audience<'_>,
        frame: &[u8],
        skip: Option<&ConnectionId>,
        mut source: Source,
    ) -> Dispatched {
        // The worker's window when it has one (see `SharedWindow`), else this fan-out's own.
        let own = SharedWindow::new(self.settings.fanout_concurrency);
        let window = self.window.unwrap_or(&own);
        let mut in_flight = FuturesUnordered::new();
        let mut reading: Option<BoxFuture<'_, Result<Page<ConnectionId>, RepositoryError>>> = None;
        let mut tally = Tally::default();
        let mut read_error = None;
        let mut stopped = false;
        let mut unfinished = Vec::new();
        loop {
            // Prefetch: fewer ids waiting than a full window can take means the next page is due.
            if reading.is_none()
                && !stopped
                && source.ready.len() < window.max()
                && let Some(from) = source.unread.take()
            {
                reading = Some(Box::pin(self.read_page_in_time(audience, from)));
            }
            while !stopped && in_flight.len() < window.limit() {
                let Some(id) = source.ready.pop_front() else {
                    break;
                };
                if Some(&id) == skip {
                    continue;
                }
                if !self.may_start() {
                    source.ready.push_front(id);
                    stopped = true;
                    break;
                }
                let started = window.started();
                // The future owns the id: the page it came from is gone by the time it runs.
                in_flight.push(async move {
                    let _in_flight = started;
                    let (posted, departed) = self.post_or_prune(&id, frame).await;
                    if let (Audience::Room(room), Some(departed)) = (audience, &departed) {
                        self.prune_orphan_membership(departed, room).await;
                    }
                    let not_yet = (posted.outcome == PostOutcome::Unfinished).then_some(id);
                    ((posted, departed), not_yet)
                });
            }
            if in_flight.is_empty() && (stopped || reading.is_none()) {
                break;
            }
            match next_event(&mut in_flight, &mut reading).await {
                Event::Posted((posted, not_yet)) => {
                    window.observe(&posted.0);
                    tally.add(posted);
                    unfinished.extend(not_yet);
                }
                Event::Read(Ok(page)) => {
                    source.ready.extend(page.items);
                    source.unread = page.next.map(Some);
                }
                // Finish what was read and started, to say how far we got.
                Event::Read(Err(e)) => read_error = Some(e),
            }
        }
        // Presence is best-effort: a fan-out near its deadline skips it rather than run past.
        if self.may_start() {
            self.announce_departures_through(window, tally.departed)
                .await;
        }
        Dispatched {
            report: tally.report,
            unstarted: source
                .ready
                .into_iter()
                .filter(|id| Some(id) != skip)
                .collect(),
            unfinished,
            read_error,
        }
    }

    /// A page read the deadline bounds: cut off, it is an error that says so.
    async fn read_page_in_time(
        &self,
        audience: Audience<'_>,
        token: Option<PageToken>,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        self.within(self.read_page(audience, token))
            .await
            .unwrap_or_else(|| {
                Err(RepositoryError::Unavailable(
                    "the invocation's deadline came before the page was read".into(),
                ))
            })
    }

    pub async fn read_page(
        &self,
        audience: Audience<'_>,
        token: Option<PageToken>,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        match audience {
            Audience::Everyone => self.repo.all_connections(token, self.now).await,
            Audience::Room(room) => self.repo.members_of(room, token, self.now).await,
        }
    }

    /// Posts to one connection; on `Gone`, prunes it and tells its rooms it left.
    pub async fn deliver(&self, to: &ConnectionId, frame: &[u8]) -> Posted {
        let (posted, departed) = self.post_or_prune(to, frame).await;
        self.announce_departures(departed.into_iter().collect())
            .await;
        posted
    }

    /// Posts to one connection; on `Gone`, prunes it and returns the departure to announce.
    /// A connection whose `$connect` may still be running is kept: API Gateway answers 410
    /// until `$connect` returns, and deleting its row would cut it off from every broadcast.
    async fn post_or_prune(&self, to: &ConnectionId, frame: &[u8]) -> (Posted, Option<Departure>) {
        let posted = self.post(to, frame).await;
        if posted.outcome != PostOutcome::Gone || self.may_still_be_connecting(to).await {
            return (posted, None);
        }
        let removed = self.prune(to).await;
        (posted, Some(Departure::of(to, removed)))
    }

    /// Whether `id`'s row is younger than [`crate::connection::CONNECT_GRACE`]. A read that
    /// fails keeps the row too: a wrongly kept row costs one more 410, a wrongly deleted one a
    /// client that silently hears nothing.
    async fn may_still_be_connecting(&self, id: &ConnectionId) -> bool {
        match self.within(self.repo.get(id, self.now)).await {
            Some(Ok(connection)) => {
                connection.is_some_and(|c| c.may_still_be_connecting_at(self.now))
            }
            Some(Err(e)) => {
                tracing::warn!(connectionId = %id, error = %e, "could not check a gone connection's age; kept");
                true
            }
            // Out of time: keeping the row costs one more 410 later, never a lost client.
            None => true,
        }
    }

    /// A 410 from a room member whose connection row was already gone: its membership outlived a
    /// `remove` whose membership deletes failed. Deleted here, or every publish to the room would
    /// pay a 410 for it until TTL (and `members` would list it).
    async fn prune_orphan_membership(&self, departed: &Departure, room: &RoomName) {
        if departed.found_connection {
            return;
        }
        match self.within(self.repo.leave(&departed.id, room)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(connectionId = %departed.id, error = %e, "could not remove an orphan membership")
            }
            None => {
                tracing::debug!(connectionId = %departed.id, "orphan membership kept: no time left")
            }
        }
    }

    /// Tells each room a removed connection was in that it left. Members found gone on the way are
    /// pruned and announced in turn, from a work list rather than by recursion, and at most
    /// `MAX_DEPARTURES_ANNOUNCED` departures per call: a room full of dead sockets costs bounded
    /// work here, and the rest are pruned by later posts.
    pub async fn announce_departures(&self, departed: Vec<Departure>) {
        let own = SharedWindow::new(self.settings.fanout_concurrency);
        self.announce_departures_through(self.window.unwrap_or(&own), departed)
            .await;
    }

    async fn announce_departures_through(
        &self,
        window: &SharedWindow,
        mut departed: Vec<Departure>,
    ) {
        let mut announced = 0;
        while let Some(departure) = departed.pop() {
            // A connection that was in no room (or whose row was already gone) has nobody to
            // tell: it must not use up the budget of those that do.
            if departure.rooms.is_empty() {
                continue;
            }
            if announced == MAX_DEPARTURES_ANNOUNCED || !self.may_start() {
                break;
            }
            announced += 1;
            let principal = departure.principal.as_ref();
            for room in &departure.rooms {
                let found_gone = self
                    .announce(window, room, PresenceEvent::Left, &departure.id, principal)
                    .await;
                departed.extend(found_gone);
            }
        }
    }

    /// Tells the other members of `room` that `subject` joined, and announces the departure of
    /// any member found gone while doing so.
    pub async fn announce_arrival(
        &self,
        room: &RoomName,
        subject: &ConnectionId,
        principal: Option<&Principal>,
    ) {
        let own = SharedWindow::new(self.settings.fanout_concurrency);
        let window = self.window.unwrap_or(&own);
        let found_gone = self
            .announce(window, room, PresenceEvent::Joined, subject, principal)
            .await;
        self.announce_departures_through(window, found_gone).await;
    }

    /// Posts a presence frame about `subject` to the other members of `room`, if it has at most
    /// `presence_max_members` members. Returns the members found gone (already pruned), whose
    /// departures are the caller's to announce.
    async fn announce(
        &self,
        window: &SharedWindow,
        room: &RoomName,
        event: PresenceEvent,
        subject: &ConnectionId,
        principal: Option<&Principal>,
    ) -> Vec<Departure> {
        let Some(Some(members)) = self.within(self.small_room_members(room)).await else {
            return Vec::new();
        };
        let frame = Frame::Presence {
            room,
            event,
            connection_id: subject,
            principal,
        };
        let bytes = match protocol::encode(&frame, self.settings.max_message_bytes) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a presence frame");
                return Vec::new();
            }
        };
        let bytes = &bytes;
        // Through the same window as the posts (a worker's is shared across its jobs): presence
        // posts count against the account's @connections rate like any other, and each checks
        // the deadline before it starts.
        futures::stream::iter(members.into_iter().filter(|id| id != subject))
            .map(|id| async move {
                if !self.may_start() {
                    return None;
                }
                let _in_flight = window.started();
                let (posted, departed) = self.post_or_prune(&id, bytes).await;
                window.observe(&posted);
                departed
            })
            .buffer_unordered(window.limit())
            .filter_map(|departed| async move { departed })
            .collect()
            .await
    }

    /// The members of `room`, or `None` when there are more than `presence_max_members` (or
    /// presence is off, or they cannot be read: presence is best-effort, never a failure). Reads
    /// at most `presence_max_members + 1` members, however large the room.
    async fn small_room_members(&self, room: &RoomName) -> Option<Vec<ConnectionId>> {
        let max = self.settings.presence_max_members;
        if max == 0 {
            return None;
        }
        let mut members: Vec<ConnectionId> = Vec::new();
        let mut after = None;
        for _ in 0..PRESENCE_MAX_PAGES {
            let wanted = max + 1 - members.len();
            let page = match self.repo.member_list(room, after, wanted, self.now).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "presence skipped: could not read the room");
                    return None;
                }
            };
            members.extend(page.members.into_iter().map(|m| m.id));
            if members.len() > max {
                return None;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Some(members),
            }
        }
        // Pages emptied by expired rows, over and over: too costly to count, treat as large.
        None
    }

    /// Posts to one connection: retries `Throttled` (up to `max_throttled_attempts`) and
    /// `Transient` (up to `max_attempts`) with jittered backoff, gives up at once on faults no
    /// retry can fix. Prunes nothing: that is the caller's choice.
    async fn post(&self, to: &ConnectionId, frame: &[u8]) -> Posted {
        let retry = &self.settings.retry;
        let mut attempt = 1;
        let mut throttled = 0;
        let done = |outcome, throttled, attempt: u32| Posted {
            outcome,
            throttled,
            retried: u64::from(attempt - 1),
        };
        loop {
            match self.notifier.send(to, frame).await {
                Ok(()) => return done(PostOutcome::Delivered, throttled, attempt),
                Err(NotifyError::Gone) => return done(PostOutcome::Gone, throttled, attempt),
                Err(e @ (NotifyError::Throttled | NotifyError::Transient(_))) => {
                    let budget = if matches!(e, NotifyError::Throttled) {
                        throttled += 1;
                        retry.max_throttled_attempts
                    } else {
                        retry.max_attempts
                    };
                    if attempt >= budget {
                        tracing::info!(connectionId = %to, attempts = attempt, error = %e, "a post did not get through this time");
                        return done(PostOutcome::Unfinished, throttled, attempt);
                    }
                    let pause = retry.pause(attempt);
                    if self
                        .deadline
                        .is_some_and(|deadline| !deadline.leaves(pause))
                    {
                        return done(PostOutcome::Unfinished, throttled, attempt);
                    }
                    self.sleeper.sleep(pause).await;
                    attempt += 1;
                }
                Err(e @ (NotifyError::Forbidden(_) | NotifyError::PayloadTooLarge)) => {
                    tracing::error!(connectionId = %to, error = %e, "configuration fault: check the management endpoint, stage and IAM policy");
                    return done(PostOutcome::Misconfigured, throttled, attempt);
                }
            }
        }
    }

    async fn prune(&self, id: &ConnectionId) -> Removed {
        // A failed prune costs one more 410 next time, and TTL removes the row in the end: not
        // worth failing the fan-out for, nor running past the deadline.
        match self.within(self.repo.remove(id)).await {
            Some(Ok(removed)) => removed,
            Some(Err(e)) => {
                tracing::warn!(connectionId = %id, error = %e, "could not remove a gone connection");
                Removed::default()
            }
            None => Removed::default(),
        }
    }
}
