//! Test support for every crate's tests (feature `mocks`): short constructors that panic on a
//! typo in a test, the page-collecting loop, and the proptest case count.

use std::future::Future;

use crate::ports::{ConnectionRepository, Page, PageToken, RepositoryError};
use crate::{ConnectionId, RoomName, Timestamp};

/// A connection id a test spelled out; panics on a malformed one, which is a bug in the test.
pub fn id(raw: &str) -> ConnectionId {
    ConnectionId::parse(raw).unwrap_or_else(|e| panic!("test connection id {raw:?}: {e}"))
}

/// A room name a test spelled out; panics on a malformed one, which is a bug in the test.
pub fn room(raw: &str) -> RoomName {
    RoomName::parse(raw).unwrap_or_else(|e| panic!("test room name {raw:?}: {e}"))
}

/// The proptest case count: `default`, or `PROPTEST_CASES` for long fuzzing runs
/// (docs/hardening.md, "Fuzzing"). proptest reads that variable itself only when a test sets no
/// count of its own.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// The most pages a test reads before it decides paging never ends.
pub const MAX_PAGES: usize = 10_000;

/// Every item of a paged read, and how many pages it took. Panics if paging never ends.
pub async fn collect_pages<T, F, Fut>(mut read: F) -> Result<(Vec<T>, usize), RepositoryError>
where
    F: FnMut(Option<PageToken>) -> Fut,
    Fut: Future<Output = Result<Page<T>, RepositoryError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    for pages in 1..=MAX_PAGES {
        let page = read(token).await?;
        items.extend(page.items);
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok((items, pages)),
        }
    }
    panic!("paging did not end after {MAX_PAGES} pages")
}

/// Every live connection, through all pages.
pub async fn everyone<R: ConnectionRepository + ?Sized>(
    repo: &R,
    now: Timestamp,
) -> Vec<ConnectionId> {
    collect_pages(|token| repo.all_connections(token, now))
        .await
        .unwrap_or_else(|e| panic!("listing every connection failed: {e}"))
        .0
}

/// Every live member of `room`, through all pages.
pub async fn members<R: ConnectionRepository + ?Sized>(
    repo: &R,
    room: &RoomName,
    now: Timestamp,
) -> Vec<ConnectionId> {
    collect_pages(|token| repo.members_of(room, token, now))
        .await
        .unwrap_or_else(|e| panic!("listing the members of {room} failed: {e}"))
        .0
}

pub mod tidy;
