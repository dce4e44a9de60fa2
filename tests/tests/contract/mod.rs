//! The repository contract: what every `ConnectionRepository` MUST do (see `domain::ports`).
//!
//! Each check is generic over a factory that makes an empty repository with a given page size, so
//! the in-memory fake and the DynamoDB adapter answer the very same questions.

use std::collections::BTreeSet;
use std::future::Future;

use domain::testing::collect_pages;
use domain::{
    Connection, ConnectionId, ConnectionRepository, JoinError, Joined, MemberPage, Removed,
    Timestamp,
};
use futures::StreamExt;

#[macro_use]
mod pruning;
mod rate_limit;
#[macro_use]
pub mod room_log;
mod sessions;
pub use pruning::*;
pub use rate_limit::*;
pub use sessions::*;

pub const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const HOUR_MS: u64 = 3_600_000;

pub use domain::testing::{id, room};

pub fn live(raw: &str) -> Connection {
    Connection {
        id: id(raw),
        connected_at: NOW,
        expires_at: Timestamp::from_millis(NOW.as_millis() + 2 * HOUR_MS),
        principal: Some(domain::Principal::parse("user-1").unwrap()),
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("contract".into()),
        metadata: None,
        token_expires_at: None,
        reauth_grants: None,
    }
}

fn expired(raw: &str) -> Connection {
    Connection {
        expires_at: Timestamp::from_millis(NOW.as_millis() - 1),
        connected_at: Timestamp::from_millis(NOW.as_millis() - 3 * HOUR_MS),
        ..live(raw)
    }
}

/// Every connection and how many pages it took.
async fn everyone<R: ConnectionRepository>(repo: &R) -> (Vec<ConnectionId>, usize) {
    collect_pages(|token| repo.all_connections(token, NOW))
        .await
        .unwrap()
}

/// Every member of room `name` and how many pages it took.
async fn members<R: ConnectionRepository>(repo: &R, name: &str) -> (Vec<ConnectionId>, usize) {
    let room = room(name);
    collect_pages(|token| repo.members_of(&room, token, NOW))
        .await
        .unwrap()
}

async fn save_all<R: ConnectionRepository>(repo: &R, ids: impl Iterator<Item = String>) {
    futures::stream::iter(ids)
        .map(|raw| async move { repo.save(&live(&raw)).await.unwrap() })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

pub async fn saved_connections_can_be_read_back_and_saving_again_is_an_upsert<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    assert_eq!(repo.get(&id("a"), NOW).await.unwrap(), None);

    repo.save(&live("a")).await.unwrap();
    assert_eq!(repo.get(&id("a"), NOW).await.unwrap(), Some(live("a")));

    // What the on_connect hook attached is kept, and a retried save replaces it.
    let again = Connection {
        user_agent: Some("retried".into()),
        metadata: Some(r#"{"name":"Ada","role":"moderator"}"#.into()),
        ..live("a")
    };
    repo.save(&again).await.unwrap();
    assert_eq!(repo.get(&id("a"), NOW).await.unwrap(), Some(again));
    assert_eq!(everyone(&repo).await.0, vec![id("a")]);
}

pub async fn remove_returns_what_it_removed_and_is_idempotent<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    repo.join(&id("a"), &room("r1"), 50, NOW).await.unwrap();
    repo.join(&id("a"), &room("r2"), 50, NOW).await.unwrap();

    let removed = repo.remove(&id("a")).await.unwrap();
    assert_eq!(removed.connection, Some(live("a")));
    let rooms: BTreeSet<_> = removed.rooms.into_iter().collect();
    assert_eq!(rooms, BTreeSet::from([room("r1"), room("r2")]));

    assert_eq!(repo.remove(&id("a")).await.unwrap(), Removed::default());
    assert_eq!(repo.remove(&id("never")).await.unwrap(), Removed::default());
    assert_eq!(repo.get(&id("a"), NOW).await.unwrap(), None);
}

pub async fn join_and_leave_are_idempotent_and_visible_both_ways<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    repo.save(&live("b")).await.unwrap();

    repo.join(&id("a"), &room("r"), 50, NOW).await.unwrap();
    repo.join(&id("a"), &room("r"), 50, NOW).await.unwrap();
    repo.join(&id("b"), &room("r"), 50, NOW).await.unwrap();
    let (mut in_room, _) = members(&repo, "r").await;
    in_room.sort();
    assert_eq!(in_room, vec![id("a"), id("b")]);
    assert_eq!(repo.rooms_of(&id("a"), NOW).await.unwrap(), vec![room("r")]);

    repo.leave(&id("a"), &room("r")).await.unwrap();
    repo.leave(&id("a"), &room("r")).await.unwrap();
    repo.leave(&id("a"), &room("never-joined")).await.unwrap();
    assert_eq!(members(&repo, "r").await.0, vec![id("b")]);
    assert!(repo.rooms_of(&id("a"), NOW).await.unwrap().is_empty());
}

pub async fn the_room_limit_is_enforced_but_rejoining_a_room_is_not_counted<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    for name in ["r1", "r2", "r3"] {
        repo.join(&id("a"), &room(name), 3, NOW).await.unwrap();
    }
    assert_eq!(
        repo.join(&id("a"), &room("r4"), 3, NOW).await,
        Err(JoinError::TooManyRooms { max: 3 })
    );
    repo.join(&id("a"), &room("r2"), 3, NOW).await.unwrap();
    repo.leave(&id("a"), &room("r1")).await.unwrap();
    repo.join(&id("a"), &room("r4"), 3, NOW).await.unwrap();
    assert_eq!(repo.rooms_of(&id("a"), NOW).await.unwrap().len(), 3);
}

pub async fn memberships_are_gone_after_remove<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    repo.save(&live("b")).await.unwrap();
    for i in 0..30 {
        repo.join(&id("a"), &room(&format!("r{i}")), 50, NOW)
            .await
            .unwrap();
    }
    repo.join(&id("b"), &room("r0"), 50, NOW).await.unwrap();

    repo.remove(&id("a")).await.unwrap();

    for i in 0..30 {
        let (in_room, _) = members(&repo, &format!("r{i}")).await;
        assert!(!in_room.contains(&id("a")), "a is still in r{i}");
    }
    assert_eq!(members(&repo, "r0").await.0, vec![id("b")]);
    assert!(repo.rooms_of(&id("a"), NOW).await.unwrap().is_empty());
}

pub async fn all_connections_pages_through_thousands_and_never_yields_memberships<R, F, Fut>(
    fresh: F,
) where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(1_000).await;
    save_all(&repo, (0..2_500).map(|i| format!("conn-{i:05}"))).await;
    repo.join(&id("conn-00001"), &room("lobby"), 50, NOW)
        .await
        .unwrap();
    repo.join(&id("conn-00002"), &room("lobby"), 50, NOW)
        .await
        .unwrap();

    let (all, pages) = everyone(&repo).await;

    assert!(
        pages >= 3,
        "2 500 rows at 1 000 a page came in {pages} pages"
    );
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 2_500, "every connection exactly once");
    assert_eq!(distinct.len(), 2_500);
}

pub async fn members_of_a_room_page_through_to_the_end<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(10).await;
    let ids: Vec<String> = (0..35).map(|i| format!("m-{i:03}")).collect();
    save_all(&repo, ids.iter().cloned()).await;
    for raw in &ids {
        repo.join(&id(raw), &room("big"), 50, NOW).await.unwrap();
    }

    let (in_room, pages) = members(&repo, "big").await;

    assert!(pages >= 4, "35 members at 10 a page came in {pages} pages");
    let got: BTreeSet<_> = in_room.into_iter().collect();
    let want: BTreeSet<_> = ids.iter().map(|s| id(s)).collect();
    assert_eq!(got, want);
}

pub async fn expired_connections_are_invisible_to_every_read<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("fresh")).await.unwrap();
    repo.join(&id("fresh"), &room("r"), 50, NOW).await.unwrap();
    // Joined while live, then time passes: the row is still stored, as with DynamoDB's lazy TTL.
    let old = expired("old");
    let before_expiry = Timestamp::from_millis(NOW.as_millis() - 2);
    repo.save(&old).await.unwrap();
    repo.join(&id("old"), &room("r"), 50, before_expiry)
        .await
        .unwrap();

    assert_eq!(repo.get(&id("old"), NOW).await.unwrap(), None);
    assert_eq!(everyone(&repo).await.0, vec![id("fresh")]);
    assert_eq!(members(&repo, "r").await.0, vec![id("fresh")]);
    assert!(repo.rooms_of(&id("old"), NOW).await.unwrap().is_empty());
    assert_eq!(
        repo.join(&id("old"), &room("r2"), 50, NOW).await,
        Err(JoinError::NotConnected)
    );
}

pub async fn join_after_remove_leaves_no_orphan<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    repo.remove(&id("a")).await.unwrap();

    assert_eq!(
        repo.join(&id("a"), &room("r"), 50, NOW).await,
        Err(JoinError::NotConnected)
    );
    assert!(members(&repo, "r").await.0.is_empty());
    assert_eq!(
        repo.join(&id("never"), &room("r"), 50, NOW).await,
        Err(JoinError::NotConnected)
    );
}

pub async fn joins_racing_a_remove_leave_no_orphans<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    let joins = futures::future::join_all((0..20).map(|i| {
        let repo = &repo;
        async move {
            repo.join(&id("a"), &room(&format!("race{i}")), 50, NOW)
                .await
        }
    }));
    let remove = async {
        tokio::task::yield_now().await;
        repo.remove(&id("a")).await.unwrap()
    };
    let (results, _) = futures::join!(joins, remove);

    for (i, result) in results.iter().enumerate() {
        assert!(
            matches!(result, Ok(_) | Err(JoinError::NotConnected)),
            "join {i}: {result:?}"
        );
        let (in_room, _) = members(&repo, &format!("race{i}")).await;
        assert!(in_room.is_empty(), "orphan membership in race{i}");
    }
}

pub async fn concurrent_joins_and_leaves_for_one_connection_end_consistent<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    for i in 0..10 {
        repo.join(&id("a"), &room(&format!("old{i}")), 50, NOW)
            .await
            .unwrap();
    }

    let joins = (0..20).map(|i| {
        let repo = &repo;
        async move {
            repo.join(&id("a"), &room(&format!("new{i}")), 50, NOW)
                .await
                .unwrap()
        }
    });
    let leaves = (0..10).map(|i| {
        let repo = &repo;
        async move {
            repo.leave(&id("a"), &room(&format!("old{i}")))
                .await
                .unwrap()
        }
    });
    futures::join!(
        futures::future::join_all(joins),
        futures::future::join_all(leaves)
    );

    let rooms: BTreeSet<_> = repo
        .rooms_of(&id("a"), NOW)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let want: BTreeSet<_> = (0..20).map(|i| room(&format!("new{i}"))).collect();
    assert_eq!(rooms, want);
    for i in 0..20 {
        assert_eq!(members(&repo, &format!("new{i}")).await.0, vec![id("a")]);
    }
    for i in 0..10 {
        assert!(members(&repo, &format!("old{i}")).await.0.is_empty());
    }
}

pub async fn a_second_join_says_already_member<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();

    assert_eq!(
        repo.join(&id("a"), &room("r"), 50, NOW).await.unwrap(),
        Joined::Added
    );
    assert_eq!(
        repo.join(&id("a"), &room("r"), 50, NOW).await.unwrap(),
        Joined::AlreadyMember
    );
}

pub async fn the_member_list_pages_in_id_order_with_principals_and_skips_expired_members<
    R,
    F,
    Fut,
>(
    fresh: F,
) where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    for i in 0..25 {
        let mut connection = live(&format!("m{i:02}"));
        connection.principal = Some(domain::Principal::parse(format!("user-m{i:02}")).unwrap());
        if i == 7 {
            // Live when it joins, expired when the list is read: its row is still there.
            connection.expires_at = Timestamp::from_millis(NOW.as_millis() + 1);
        }
        repo.save(&connection).await.unwrap();
        repo.join(&connection.id, &room("r"), 50, NOW)
            .await
            .unwrap();
    }
    let later = Timestamp::from_millis(NOW.as_millis() + 1);

    let mut listed = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = repo
            .member_list(&room("r"), after, 10, later)
            .await
            .unwrap();
        assert!(page.members.len() <= 10, "at most the limit");
        listed.extend(page.members);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let ids: Vec<String> = listed.iter().map(|m| m.id.to_string()).collect();
    let expected: Vec<String> = (0..25)
        .filter(|i| *i != 7)
        .map(|i| format!("m{i:02}"))
        .collect();
    assert_eq!(ids, expected);
    assert!(
        listed
            .iter()
            .all(|m| m.principal.as_ref().map(|p| p.as_str()) == Some(&*format!("user-{}", m.id))),
        "each member carries its own principal"
    );
    let none = repo
        .member_list(&room("empty"), None, 10, later)
        .await
        .unwrap();
    assert_eq!(none, MemberPage::default());
}

/// One `#[tokio::test]` per contract check, for a backend given as `async fn(page_size) -> R`.
#[macro_export]
macro_rules! repository_contract {
    ($fresh:path) => {
        $crate::repository_contract!(@tests $fresh,
            saved_connections_can_be_read_back_and_saving_again_is_an_upsert,
            remove_returns_what_it_removed_and_is_idempotent,
            join_and_leave_are_idempotent_and_visible_both_ways,
            the_room_limit_is_enforced_but_rejoining_a_room_is_not_counted,
            memberships_are_gone_after_remove,
            all_connections_pages_through_thousands_and_never_yields_memberships,
            members_of_a_room_page_through_to_the_end,
            expired_connections_are_invisible_to_every_read,
            join_after_remove_leaves_no_orphan,
            joins_racing_a_remove_leave_no_orphans,
            concurrent_joins_and_leaves_for_one_connection_end_consistent,
            a_second_join_says_already_member,
            the_member_list_pages_in_id_order_with_principals_and_skips_expired_members,
            a_new_connection_starts_with_a_full_bucket_and_a_refusal_says_the_exact_wait,
            a_bucket_lives_and_dies_with_its_connection,
            concurrent_takes_never_spend_the_same_token_twice,
            a_principals_bucket_spans_its_connections_and_outlives_them,
            concurrent_takes_of_one_principal_never_spend_the_same_token_twice,
            a_principals_connections_are_exactly_its_live_ones,
            a_reauth_replaces_the_rows_expiry_and_grants,
            a_principal_with_hundreds_of_connections_is_found_on_every_one
        );
    };
    (@tests $fresh:path, $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::contract::$check($fresh).await;
            }
        )+
    };
}
