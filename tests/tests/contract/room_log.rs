//! The room log contract: what every `RoomLog` MUST do (see `domain::stream`), against a store
//! pair (a `ConnectionRepository` and a `RoomLog` on the same storage, as the service wires them),
//! so that a log item is proved never to show up as a room's member.

use std::future::Future;

use domain::stream::{Keep, NewMessage, ReadFrom, RoomLog};
use domain::{ConnectionRepository, MessageId, Timestamp};
use futures::StreamExt;

use super::{NOW, id, live, members, room};

fn message(id: &str) -> NewMessage {
    NewMessage {
        id: MessageId::parse(id).unwrap(),
        from: Some(super::id("sender")),
        principal: Some(domain::Principal::parse("alice").unwrap()),
        data: format!(r#"{{"text":"{id}"}}"#),
        sent_at: NOW.as_millis(),
    }
}

fn later(ms: u64) -> Timestamp {
    Timestamp::from_millis(NOW.as_millis() + ms)
}

/// Kept an hour, appended once (a client's publish).
const KEPT: Keep = Keep {
    message_until: Some(Timestamp::from_millis(NOW.as_millis() + 3_600_000)),
    once_until: None,
};

pub async fn appends_take_increasing_seqs_per_room_and_rooms_are_apart<R, L, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (_, log) = fresh().await;
    assert_eq!(log.latest(&room("a")).await.unwrap(), None);

    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(
            log.append(&room("a"), &message(&format!("a{i}")), KEPT, NOW)
                .await
                .unwrap(),
        );
    }
    let other = log
        .append(&room("b"), &message("b0"), KEPT, NOW)
        .await
        .unwrap();

    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(other, 1);
    assert_eq!(log.latest(&room("a")).await.unwrap(), Some(3));
    let page = log
        .read(&room("a"), ReadFrom::Oldest, 10, NOW)
        .await
        .unwrap();
    let read: Vec<(u64, String)> = page
        .messages
        .iter()
        .map(|m| (m.seq, m.id.to_string()))
        .collect();
    assert_eq!(
        read,
        vec![(1, "a0".into()), (2, "a1".into()), (3, "a2".into())]
    );
    let first = &page.messages[0];
    assert_eq!(first.data, r#"{"text":"a0"}"#);
    assert_eq!(first.from, Some(id("sender")));
    assert_eq!(first.principal.as_ref().map(|p| p.as_str()), Some("alice"));
    assert_eq!(first.sent_at, NOW.as_millis());
    assert!(!page.more);
}

pub async fn concurrent_appends_to_one_room_get_distinct_seqs<R, L, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (_, log) = fresh().await;
    let messages: Vec<NewMessage> = (0..40).map(|i| message(&format!("c{i}"))).collect();

    let mut seqs: Vec<u64> = futures::stream::iter(&messages)
        .map(|m| {
            let log = &log;
            async move { log.append(&room("hot"), m, KEPT, NOW).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
}

pub async fn an_id_appended_once_keeps_its_seq_on_every_later_append<R, L, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (_, log) = fresh().await;
    let once = Keep {
        once_until: Some(later(3_600_000)),
        ..KEPT
    };
    log.append(&room("r"), &message("before"), KEPT, NOW)
        .await
        .unwrap();

    let first = log
        .append(&room("r"), &message("backend-1"), once, NOW)
        .await
        .unwrap();
    let again = log
        .append(&room("r"), &message("backend-1"), once, later(5))
        .await
        .unwrap();
    let next = log
        .append(&room("r"), &message("after"), KEPT, NOW)
        .await
        .unwrap();

    assert_eq!((first, again), (2, 2), "a redelivery takes the same seq");
    assert!(next > 2);
    let kept: Vec<u64> = log
        .read(&room("r"), ReadFrom::Oldest, 10, NOW)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(
        kept.iter().filter(|seq| **seq == 2).count(),
        1,
        "kept once: {kept:?}"
    );
    // Concurrent runs of one message agree on its seq.
    let (r, m) = (room("r"), message("backend-2"));
    let racing: Vec<u64> = futures::future::join_all((0..8).map(|_| log.append(&r, &m, once, NOW)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(racing.iter().all(|seq| *seq == racing[0]), "{racing:?}");
}

pub async fn reads_page_up_and_down_and_say_whether_more_follow<R, L, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (_, log) = fresh().await;
    for i in 1..=7 {
        log.append(&room("r"), &message(&format!("m{i}")), KEPT, NOW)
            .await
            .unwrap();
    }
    let seqs =
        |page: &domain::stream::LogPage| page.messages.iter().map(|m| m.seq).collect::<Vec<_>>();

    let up = log
        .read(&room("r"), ReadFrom::After(2), 3, NOW)
        .await
        .unwrap();
    let rest = log
        .read(&room("r"), ReadFrom::After(5), 3, NOW)
        .await
        .unwrap();
    let down = log
        .read(&room("r"), ReadFrom::Before(6), 3, NOW)
        .await
        .unwrap();
    let bottom = log
        .read(&room("r"), ReadFrom::Before(3), 3, NOW)
        .await
        .unwrap();
    let newest = log
        .read(&room("r"), ReadFrom::Before(u64::MAX), 2, NOW)
        .await
        .unwrap();

    assert_eq!((seqs(&up), up.more), (vec![3, 4, 5], true));
    assert_eq!((seqs(&rest), rest.more), (vec![6, 7], false));
    assert_eq!((seqs(&down), down.more), (vec![5, 4, 3], true));
    assert_eq!((seqs(&bottom), bottom.more), (vec![2, 1], false));
    assert_eq!(seqs(&newest), vec![7, 6]);
}

pub async fn a_message_past_its_keep_is_gone_and_with_history_off_only_the_seq_moves<R, L, F, Fut>(
    fresh: F,
) where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (_, log) = fresh().await;
    let briefly = Keep {
        message_until: Some(later(1_000)),
        once_until: None,
    };
    let off = Keep {
        message_until: None,
        once_until: None,
    };
    log.append(&room("r"), &message("brief"), briefly, NOW)
        .await
        .unwrap();
    log.append(&room("r"), &message("long"), KEPT, NOW)
        .await
        .unwrap();
    log.append(&room("r"), &message("unkept"), off, NOW)
        .await
        .unwrap();

    let now: Vec<u64> = log
        .read(&room("r"), ReadFrom::Oldest, 10, NOW)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    let after: Vec<u64> = log
        .read(&room("r"), ReadFrom::Oldest, 10, later(1_000))
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();

    assert_eq!(now, vec![1, 2], "the unkept message is not in the history");
    assert_eq!(
        after,
        vec![2],
        "treated as gone at its keep, deleted or not"
    );
    assert_eq!(log.latest(&room("r")).await.unwrap(), Some(3));
}

pub async fn a_rooms_stream_never_shows_up_among_its_members<R, L, F, Fut>(fresh: F)
where
    R: ConnectionRepository,
    L: RoomLog,
    F: Fn() -> Fut,
    Fut: Future<Output = (R, L)>,
{
    let (repo, log) = fresh().await;
    for member in ["m1", "m2"] {
        repo.save(&live(member)).await.unwrap();
        repo.join(&id(member), &room("busy"), 50, NOW)
            .await
            .unwrap();
    }
    let once = Keep {
        once_until: Some(later(3_600_000)),
        ..KEPT
    };
    for i in 0..5 {
        log.append(&room("busy"), &message(&format!("k{i}")), KEPT, NOW)
            .await
            .unwrap();
        log.append(&room("busy"), &message(&format!("o{i}")), once, NOW)
            .await
            .unwrap();
    }

    let (listed, _) = members(&repo, "busy").await;
    let page = repo
        .member_list(&room("busy"), None, 100, NOW)
        .await
        .unwrap();

    assert_eq!(listed, vec![id("m1"), id("m2")]);
    let ids: Vec<_> = page.members.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, vec![id("m1"), id("m2")]);
    assert_eq!(page.next, None);
}

/// One `#[tokio::test]` per contract check, for a store pair given as `async fn() -> (R, L)`.
#[macro_export]
macro_rules! room_log_contract {
    ($fresh:path) => {
        $crate::room_log_contract!(@tests $fresh,
            appends_take_increasing_seqs_per_room_and_rooms_are_apart,
            concurrent_appends_to_one_room_get_distinct_seqs,
            an_id_appended_once_keeps_its_seq_on_every_later_append,
            reads_page_up_and_down_and_say_whether_more_follow,
            a_message_past_its_keep_is_gone_and_with_history_off_only_the_seq_moves,
            a_rooms_stream_never_shows_up_among_its_members
        );
    };
    (@tests $fresh:path, $($check:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::contract::room_log::$check($fresh).await;
            }
        )+
    };
}
