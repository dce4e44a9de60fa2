//! The sessions' part of the contract: a principal's live connections (the index `disconnect`,
//! `ban` and `forget` read), a `reauth`'s expiry and grants on the row, and `Bans`.

use std::future::Future;
use std::time::Duration;

use domain::sessions::{Ban, Bans};
use domain::{ConnectionId, ConnectionRepository, Principal, RoomGrants, Timestamp};

use super::{NOW, id, live};

fn principal(raw: &str) -> Principal {
    Principal::parse(raw).unwrap()
}

fn sorted(mut ids: Vec<ConnectionId>) -> Vec<ConnectionId> {
    ids.sort();
    ids
}

pub async fn a_principals_connections_are_exactly_its_live_ones<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    let alice = principal("alice@example.com");
    for raw in ["a1", "a2", "a3"] {
        let mut connection = live(raw);
        connection.principal = Some(alice.clone());
        repo.save(&connection).await.unwrap();
    }
    repo.save(&live("b1")).await.unwrap(); // user-1's
    let mut anonymous = live("n1");
    anonymous.principal = None;
    repo.save(&anonymous).await.unwrap();
    let mut gone_soon = live("a4");
    gone_soon.principal = Some(alice.clone());
    gone_soon.expires_at = Timestamp::from_millis(NOW.as_millis() + 1);
    repo.save(&gone_soon).await.unwrap();

    assert_eq!(
        sorted(repo.connections_of(&alice, NOW).await.unwrap()),
        vec![id("a1"), id("a2"), id("a3"), id("a4")]
    );
    let later = NOW.saturating_add(Duration::from_millis(2));
    assert_eq!(
        sorted(repo.connections_of(&alice, later).await.unwrap()),
        vec![id("a1"), id("a2"), id("a3")],
        "an expired connection is not live"
    );
    repo.remove(&id("a2")).await.unwrap();
    assert_eq!(
        sorted(repo.connections_of(&alice, NOW).await.unwrap()),
        vec![id("a1"), id("a3"), id("a4")],
        "a removed connection leaves the index with its row"
    );
    assert_eq!(
        repo.connections_of(&principal("user-1"), NOW)
            .await
            .unwrap(),
        vec![id("b1")]
    );
    assert!(
        repo.connections_of(&principal("nobody"), NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_reauth_replaces_the_rows_expiry_and_grants<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    let until = NOW.saturating_add(Duration::from_secs(600));
    let grants = RoomGrants::parse(["team-42:*"]).unwrap();

    repo.reauth(&id("a"), until, &grants).await.unwrap();

    let row = repo.get(&id("a"), NOW).await.unwrap().expect("the row");
    assert_eq!(row.token_expires_at, Some(until));
    assert_eq!(row.reauth_grants, Some(grants));
}

/// The `Bans` contract, for a store given as `async fn() -> B`.
pub async fn a_ban_holds_until_its_end_and_unban_and_forget_lift_it<B, F, Fut>(fresh: F)
where
    B: Bans,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    let bans = fresh().await;
    let alice = principal("alice");
    let until = NOW.saturating_add(Duration::from_secs(60));
    let ban = Ban {
        until,
        reason: Some("spam".into()),
    };
    assert_eq!(bans.ban_of(&alice, NOW).await.unwrap(), None);

    bans.ban(&alice, &ban).await.unwrap();
    assert_eq!(bans.ban_of(&alice, NOW).await.unwrap(), Some(ban.clone()));
    assert_eq!(
        bans.ban_of(&alice, until).await.unwrap(),
        None,
        "over at its end, whether or not storage has deleted it"
    );
    assert_eq!(bans.ban_of(&principal("bob"), NOW).await.unwrap(), None);

    let longer = Ban {
        until: until.saturating_add(Duration::from_secs(60)),
        reason: None,
    };
    bans.ban(&alice, &longer).await.unwrap();
    assert_eq!(
        bans.ban_of(&alice, until).await.unwrap(),
        Some(longer),
        "an upsert"
    );

    bans.unban(&alice).await.unwrap();
    bans.unban(&alice).await.unwrap();
    assert_eq!(
        bans.ban_of(&alice, NOW).await.unwrap(),
        None,
        "unban is idempotent"
    );

    bans.ban(&alice, &ban).await.unwrap();
    bans.forget(&alice).await.unwrap();
    assert_eq!(
        bans.ban_of(&alice, NOW).await.unwrap(),
        None,
        "forget removes it"
    );
}

pub async fn a_principal_with_hundreds_of_connections_is_found_on_every_one<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    let busy = principal("load-test-bot");
    let mut expected = Vec::new();
    for n in 0..250 {
        let mut connection = live(&format!("c{n:03}"));
        connection.principal = Some(busy.clone());
        repo.save(&connection).await.unwrap();
        expected.push(connection.id);
    }
    expected.sort();
    assert_eq!(
        sorted(repo.connections_of(&busy, NOW).await.unwrap()),
        expected,
        "past a page: a ban must reach every socket"
    );
}
