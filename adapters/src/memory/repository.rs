use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::rate_limit::{Bucket, Take};
use domain::{
    Connection, ConnectionId, ConnectionRepository, JoinError, Joined, Member, MemberPage, Page,
    PageToken, RateLimit, Removed, RepositoryError, RoomName, Timestamp, TokenDecision,
};

/// A thread-safe [`ConnectionRepository`] in a mutex: pages, expiry and the join/remove race behave
/// as the DynamoDB adapter's do (the contract suite checks both).
///
/// Memberships are rows of their own, as in DynamoDB: each keeps the expiry and principal its
/// connection had when it joined, and room reads filter by those alone, never by the connection
/// row. So an orphan (a membership whose connection row is gone) is visible here exactly as it is
/// in DynamoDB; [`Self::remove_connection_row_only`] makes one.
pub struct InMemoryConnectionRepository {
    state: Mutex<State>,
    page_size: usize,
    /// How long each page read of an audience waits before answering (benchmarks model a
    /// remote store's `Query` with it); zero by default.
    page_read_delay: std::time::Duration,
}

/// One membership row, as DynamoDB stores it.
#[derive(Debug, Clone)]
struct Membership {
    expires_at: Timestamp,
    principal: Option<domain::Principal>,
}

#[derive(Default)]
struct State {
    connections: BTreeMap<ConnectionId, Connection>,
    members: BTreeMap<RoomName, BTreeMap<ConnectionId, Membership>>,
    rooms: BTreeMap<ConnectionId, BTreeSet<RoomName>>,
    /// Rate-limit buckets, kept apart from `connections` so a retried `save` keeps them.
    buckets: BTreeMap<ConnectionId, Bucket>,
    /// Each principal's bucket, across its connections.
    principal_buckets: BTreeMap<domain::Principal, Bucket>,
    /// Each principal's connections, as DynamoDB's index items hold them.
    principals: BTreeMap<domain::Principal, BTreeSet<ConnectionId>>,
}

impl Default for InMemoryConnectionRepository {
    fn default() -> Self {
        Self::with_page_size(100)
    }
}

impl InMemoryConnectionRepository {
    pub fn with_page_size(page_size: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            page_size: page_size.max(1),
            page_read_delay: std::time::Duration::ZERO,
        }
    }

    /// Each page read of an audience (`members_of`, `all_connections`) answers after `delay`, as
    /// a remote store's would: for benchmarks of what overlaps a page read.
    pub fn with_page_read_delay(mut self, delay: std::time::Duration) -> Self {
        self.page_read_delay = delay;
        self
    }

    async fn page_read_wait(&self) {
        if !self.page_read_delay.is_zero() {
            tokio::time::sleep(self.page_read_delay).await;
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain collections behind, still consistent enough
        // to serve: better than failing every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rows stored, live or not: for tests that check nothing is left behind.
    pub fn stored_rows(&self) -> (usize, usize) {
        let state = self.state();
        let memberships = state.members.values().map(BTreeMap::len).sum();
        (state.connections.len(), memberships)
    }

    /// What a `remove` whose membership deletes failed leaves behind (DynamoDB deletes the
    /// connection row first, then the memberships in batches): the row is gone, its memberships
    /// stay. For the tests of orphan pruning.
    pub fn remove_connection_row_only(&self, id: &ConnectionId) {
        let mut state = self.state();
        state.connections.remove(id);
        state.rooms.remove(id);
    }
}

/// One page of `keys` after `token`, the way DynamoDB pages: `page_size` rows read, then filtered.
fn page_after<'a>(
    keys: impl Iterator<Item = &'a ConnectionId>,
    page_size: usize,
    live: impl Fn(&ConnectionId) -> bool,
) -> Page<ConnectionId> {
    let mut items = Vec::new();
    let mut last = None;
    let mut keys = keys.peekable();
    for id in keys.by_ref().take(page_size) {
        if live(id) {
            items.push(id.clone());
        }
        last = Some(id);
    }
    let next = match (keys.peek(), last) {
        (Some(_), Some(last)) => Some(PageToken::new(last.as_str())),
        _ => None,
    };
    Page { items, next }
}

fn start_after(token: Option<PageToken>) -> Result<Bound<ConnectionId>, RepositoryError> {
    match token {
        None => Ok(Bound::Unbounded),
        Some(token) => ConnectionId::parse(token.as_str())
            .map(Bound::Excluded)
            .map_err(|e| RepositoryError::Unavailable(format!("bad page token: {e}"))),
    }
}

impl State {
    fn is_live(&self, id: &ConnectionId, now: Timestamp) -> bool {
        self.connections.get(id).is_some_and(|c| c.is_live_at(now))
    }

    fn delete_membership(&mut self, id: &ConnectionId, room: &RoomName) {
        if let Some(members) = self.members.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                self.members.remove(room);
            }
        }
    }
}

#[async_trait]
impl ConnectionRepository for InMemoryConnectionRepository {
    async fn save(&self, connection: &Connection) -> Result<(), RepositoryError> {
        let mut state = self.state();
        if let Some(principal) = &connection.principal {
            state
                .principals
                .entry(principal.clone())
                .or_default()
                .insert(connection.id.clone());
        }
        state
            .connections
            .insert(connection.id.clone(), connection.clone());
        Ok(())
    }

    async fn remove(&self, id: &ConnectionId) -> Result<Removed, RepositoryError> {
        let mut state = self.state();
        let connection = state.connections.remove(id);
        if let Some(principal) = connection.as_ref().and_then(|c| c.principal.clone())
            && let Some(ids) = state.principals.get_mut(&principal)
        {
            ids.remove(id);
            if ids.is_empty() {
                state.principals.remove(&principal);
            }
        }
        state.buckets.remove(id);
        let rooms = state.rooms.remove(id).unwrap_or_default();
        for room in &rooms {
            state.delete_membership(id, room);
        }
        Ok(Removed {
            connection,
            rooms: rooms.into_iter().collect(),
        })
    }

    async fn get(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError> {
        Ok(self
            .state()
            .connections
            .get(id)
            .filter(|c| c.is_live_at(now))
            .cloned())
    }

    async fn join(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        max_rooms: usize,
        now: Timestamp,
    ) -> Result<Joined, JoinError> {
        let mut state = self.state();
        let Some(connection) = state.connections.get(id).filter(|c| c.is_live_at(now)) else {
            return Err(JoinError::NotConnected);
        };
        let membership = Membership {
            expires_at: connection.expires_at,
            principal: connection.principal.clone(),
        };
        let rooms = state.rooms.entry(id.clone()).or_default();
        if rooms.contains(room) {
            return Ok(Joined::AlreadyMember);
        }
        if rooms.len() >= max_rooms {
            return Err(JoinError::TooManyRooms { max: max_rooms });
        }
        rooms.insert(room.clone());
        state
            .members
            .entry(room.clone())
            .or_default()
            .insert(id.clone(), membership);
        Ok(Joined::Added)
    }

    async fn leave(&self, id: &ConnectionId, room: &RoomName) -> Result<(), RepositoryError> {
        let mut state = self.state();
        if let Some(rooms) = state.rooms.get_mut(id) {
            rooms.remove(room);
        }
        state.delete_membership(id, room);
        Ok(())
    }

    async fn rooms_of(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError> {
        let state = self.state();
        if !state.is_live(id, now) {
            return Ok(Vec::new());
        }
        Ok(state
            .rooms
            .get(id)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn members_of(
        &self,
        room: &RoomName,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        self.page_read_wait().await;
        let start = start_after(page)?;
        let state = self.state();
        let Some(members) = state.members.get(room) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let keys = members.range((start, Bound::Unbounded)).map(|(id, _)| id);
        Ok(page_after(keys, self.page_size, |id| {
            members.get(id).is_some_and(|m| m.expires_at > now)
        }))
    }

    async fn member_list(
        &self,
        room: &RoomName,
        after: Option<ConnectionId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<MemberPage, RepositoryError> {
        let state = self.state();
        let Some(members) = state.members.get(room) else {
            return Ok(MemberPage::default());
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut ids = members.range((start, Bound::Unbounded)).peekable();
        let mut page = MemberPage::default();
        let mut last = None;
        for (id, membership) in ids.by_ref().take(limit.max(1)) {
            if membership.expires_at > now {
                page.members.push(Member {
                    id: id.clone(),
                    principal: membership.principal.clone(),
                });
            }
            last = Some(id);
        }
        if ids.peek().is_some() {
            page.next = last.cloned();
        }
        Ok(page)
    }

    async fn all_connections(
        &self,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        self.page_read_wait().await;
        let start = start_after(page)?;
        let state = self.state();
        let keys = state
            .connections
            .range((start, Bound::Unbounded))
            .map(|(k, _)| k);
        Ok(page_after(keys, self.page_size, |id| {
            state.is_live(id, now)
        }))
    }

    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        // One lock for the read and the write: concurrent takes queue up, none spends a token twice.
        let mut state = self.state();
        if !state.is_live(id, now) {
            return Ok(TokenDecision::NotConnected);
        }
        let bucket = state
            .buckets
            .get(id)
            .copied()
            .unwrap_or_else(|| limit.full(now));
        Ok(match limit.take(bucket, now) {
            Take::Taken(next) => {
                state.buckets.insert(id.clone(), next);
                TokenDecision::Taken
            }
            Take::Refused { retry_after } => TokenDecision::Refused { retry_after },
        })
    }

    async fn take_principal_token(
        &self,
        principal: &domain::Principal,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        let mut state = self.state();
        let bucket = state
            .principal_buckets
            .get(principal)
            .copied()
            .unwrap_or_else(|| limit.full(now));
        Ok(match limit.take(bucket, now) {
            Take::Taken(next) => {
                state.principal_buckets.insert(principal.clone(), next);
                TokenDecision::Taken
            }
            Take::Refused { retry_after } => TokenDecision::Refused { retry_after },
        })
    }
    async fn connections_of(
        &self,
        principal: &domain::Principal,
        now: Timestamp,
    ) -> Result<Vec<ConnectionId>, RepositoryError> {
        let state = self.state();
        Ok(state
            .principals
            .get(principal)
            .into_iter()
            .flatten()
            .filter(|id| {
                state
                    .connections
                    .get(*id)
                    .is_some_and(|c| c.is_live_at(now))
            })
            .cloned()
            .collect())
    }

    async fn reauth(
        &self,
        id: &ConnectionId,
        expires_at: Timestamp,
        grants: &domain::RoomGrants,
    ) -> Result<(), RepositoryError> {
        if let Some(connection) = self.state().connections.get_mut(id) {
            connection.token_expires_at = Some(expires_at);
            connection.reauth_grants = Some(grants.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract allows one slack token for moto's unlocked conditions; this store has a mutex
    /// and must be exact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_takes_spend_exactly_the_burst() {
        let repo = std::sync::Arc::new(InMemoryConnectionRepository::default());
        let now = Timestamp::from_millis(1_000);
        let id = domain::testing::id("a");
        repo.save(&Connection {
            id: id.clone(),
            connected_at: now,
            expires_at: Timestamp::from_millis(u64::MAX),
            principal: None,
            source_ip: None,
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        })
        .await
        .unwrap();
        let limit = RateLimit {
            per_second: 1,
            burst: 5,
        };

        let takers = (0..40).map(|_| {
            let (repo, id) = (repo.clone(), id.clone());
            tokio::spawn(async move { repo.take_token(&id, limit, now).await.unwrap() })
        });
        let mut taken = 0;
        for taker in takers.collect::<Vec<_>>() {
            taken += usize::from(taker.await.unwrap() == TokenDecision::Taken);
        }

        assert_eq!(taken, 5);
    }
}
