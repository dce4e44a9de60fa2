//! The rate-limit bucket part of the repository contract (`ConnectionRepository::take_token`).

use std::future::Future;
use std::time::Duration;

use domain::{ConnectionRepository, RateLimit, Timestamp, TokenDecision};
use futures::StreamExt;

use super::{NOW, everyone, expired, id, live};

/// Three at once, then one every 100 ms.
const TEN_A_SECOND_BURST_3: RateLimit = RateLimit {
    per_second: 10,
    burst: 3,
};

fn later(ms: u64) -> Timestamp {
    Timestamp::from_millis(NOW.as_millis() + ms)
}

async fn take<R: ConnectionRepository>(
    repo: &R,
    raw: &str,
    limit: RateLimit,
    now: Timestamp,
) -> TokenDecision {
    repo.take_token(&id(raw), limit, now).await.unwrap()
}

/// Takes from `raw`'s bucket at `now` until refused (at most `burst + 1` takes); returns how many
/// were taken and the refusal.
async fn drain<R: ConnectionRepository>(
    repo: &R,
    raw: &str,
    limit: RateLimit,
    now: Timestamp,
) -> (u32, TokenDecision) {
    for taken in 0..=limit.burst {
        match take(repo, raw, limit, now).await {
            TokenDecision::Taken => continue,
            refused => return (taken, refused),
        }
    }
    panic!("a bucket of {} gave more than {}", limit.burst, limit.burst)
}

pub async fn a_new_connection_starts_with_a_full_bucket_and_a_refusal_says_the_exact_wait<
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
    repo.save(&live("a")).await.unwrap();
    let limit = TEN_A_SECOND_BURST_3;

    let (taken, refusal) = drain(&repo, "a", limit, NOW).await;

    assert_eq!(taken, 3);
    let retry_after = Duration::from_millis(100);
    assert_eq!(refusal, TokenDecision::Refused { retry_after });
    assert_eq!(
        take(&repo, "a", limit, later(99)).await,
        TokenDecision::Refused {
            retry_after: Duration::from_millis(1)
        },
        "a refusal stores nothing, so the wait only shrinks with time"
    );
    assert_eq!(
        take(&repo, "a", limit, later(100)).await,
        TokenDecision::Taken
    );
    assert_eq!(drain(&repo, "b-is-unknown", limit, NOW).await.0, 0);
}

pub async fn a_bucket_lives_and_dies_with_its_connection<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    let limit = TEN_A_SECOND_BURST_3;
    repo.save(&expired("old")).await.unwrap();

    assert_eq!(
        take(&repo, "ghost", limit, NOW).await,
        TokenDecision::NotConnected
    );
    assert_eq!(
        take(&repo, "old", limit, NOW).await,
        TokenDecision::NotConnected
    );
    assert_eq!(repo.get(&id("ghost"), NOW).await.unwrap(), None);
    assert!(
        everyone(&repo).await.0.is_empty(),
        "no stub row for an unknown id"
    );

    repo.save(&live("a")).await.unwrap();
    assert_eq!(drain(&repo, "a", limit, NOW).await.0, 3);
    repo.save(&live("a")).await.unwrap();
    assert_eq!(
        drain(&repo, "a", limit, NOW).await.0,
        0,
        "a retried $connect keeps the bucket"
    );
    assert_eq!(repo.get(&id("a"), NOW).await.unwrap(), Some(live("a")));

    repo.remove(&id("a")).await.unwrap();
    assert_eq!(
        take(&repo, "a", limit, NOW).await,
        TokenDecision::NotConnected
    );
    repo.save(&live("a")).await.unwrap();
    assert_eq!(
        drain(&repo, "a", limit, NOW).await.0,
        3,
        "a new connection with a reused id starts full"
    );
}

pub async fn concurrent_takes_never_spend_the_same_token_twice<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    repo.save(&live("a")).await.unwrap();
    let limit = RateLimit {
        per_second: 1,
        burst: 5,
    };

    // All at the same instant, so nothing refills: exactly the burst can be taken.
    let decisions: Vec<TokenDecision> = futures::stream::iter(0..40)
        .map(|_| async { repo.take_token(&id("a"), limit, NOW).await.unwrap() })
        .buffer_unordered(40)
        .collect()
        .await;

    let taken = decisions
        .iter()
        .filter(|d| **d == TokenDecision::Taken)
        .count();
    // Never more than the burst (the safety rule); fewer only when a store with bounded retries
    // refused takes that kept losing the race (the port allows it). One slack token: moto, the
    // DynamoDB stand-in here, evaluates a condition and writes without a lock, so under 40
    // racing writers it lets one extra through now and then (DynamoDB itself never does).
    // Without the condition, a dozen or more get through.
    assert!((1..=6).contains(&taken), "{taken} taken: {decisions:?}");
    assert!(
        decisions
            .iter()
            .all(|d| matches!(d, TokenDecision::Taken | TokenDecision::Refused { .. })),
        "{decisions:?}"
    );
}

pub async fn a_principals_bucket_spans_its_connections_and_outlives_them<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    let alice = domain::Principal::parse("alice@example.com").unwrap();
    let bob = domain::Principal::parse("bob").unwrap();
    let limit = TEN_A_SECOND_BURST_3;
    let take = |principal| {
        let repo = &repo;
        async move {
            repo.take_principal_token(principal, limit, NOW)
                .await
                .unwrap()
        }
    };

    // Three tokens, whichever connections spend them, then a refusal with the exact wait; a
    // connection closing and another opening changes nothing (the bucket is the principal's).
    repo.save(&live("a1")).await.unwrap();
    assert_eq!(take(&alice).await, TokenDecision::Taken);
    assert_eq!(take(&alice).await, TokenDecision::Taken);
    repo.remove(&id("a1")).await.unwrap();
    repo.save(&live("a2")).await.unwrap();
    assert_eq!(take(&alice).await, TokenDecision::Taken);
    assert_eq!(
        take(&alice).await,
        TokenDecision::Refused {
            retry_after: Duration::from_millis(100)
        }
    );
    assert_eq!(
        take(&bob).await,
        TokenDecision::Taken,
        "each principal its own"
    );
    assert_eq!(
        repo.take_principal_token(&alice, limit, later(100))
            .await
            .unwrap(),
        TokenDecision::Taken,
        "refilled"
    );
    assert_eq!(
        everyone(&repo).await.0,
        vec![id("a2")],
        "no connection is listed for it"
    );
}

pub async fn concurrent_takes_of_one_principal_never_spend_the_same_token_twice<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = fresh(100).await;
    let alice = domain::Principal::parse("alice").unwrap();
    let limit = RateLimit {
        per_second: 1,
        burst: 5,
    };

    let decisions: Vec<TokenDecision> = futures::stream::iter(0..20)
        .map(|_| async { repo.take_principal_token(&alice, limit, NOW).await.unwrap() })
        .buffer_unordered(20)
        .collect()
        .await;

    let taken = decisions
        .iter()
        .filter(|d| **d == TokenDecision::Taken)
        .count();
    // moto applies conditions without locks; the contract allows one slack token there, as for
    // a connection's bucket.
    assert!(
        (1..=6).contains(&taken),
        "{taken} tokens from a bucket of 5"
    );
}
