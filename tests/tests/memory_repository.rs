//! The repository contract against the in-memory fake.

use crate::contract;

use adapters::memory::{InMemoryConnectionRepository, InMemoryRoomLog};

async fn fresh(page_size: usize) -> InMemoryConnectionRepository {
    InMemoryConnectionRepository::with_page_size(page_size)
}

repository_contract!(fresh);

#[tokio::test]
async fn memory_bans_hold_to_the_bans_contract() {
    contract::a_ban_holds_until_its_end_and_unban_and_forget_lift_it(|| async {
        adapters::memory::InMemoryBans::default()
    })
    .await;
}

async fn orphan(repo: std::sync::Arc<InMemoryConnectionRepository>, id: domain::ConnectionId) {
    repo.remove_connection_row_only(&id);
}

pruning_contract!(fresh, orphan);

async fn fresh_pair() -> (InMemoryConnectionRepository, InMemoryRoomLog) {
    (
        InMemoryConnectionRepository::default(),
        InMemoryRoomLog::default(),
    )
}

room_log_contract!(fresh_pair);

#[tokio::test]
async fn a_room_past_the_limit_it_is_told_is_busy_with_the_wait_and_other_rooms_are_not() {
    use domain::stream::{AppendError, Keep, NewMessage, RoomLog};
    let log = InMemoryRoomLog::with_room_limit(domain::RateLimit {
        per_second: 10,
        burst: 3,
    });
    let keep = Keep {
        message_until: None,
        once_until: None,
    };
    let message = |i: u32| NewMessage {
        id: domain::MessageId::parse(format!("m{i}")).unwrap(),
        from: None,
        principal: None,
        data: "1".into(),
        sent_at: 0,
    };
    let now = contract::NOW;

    for i in 0..3 {
        log.append(&contract::room("hot"), &message(i), keep, now)
            .await
            .unwrap();
    }
    let refused = log
        .append(&contract::room("hot"), &message(3), keep, now)
        .await;
    let elsewhere = log
        .append(&contract::room("calm"), &message(4), keep, now)
        .await;

    assert_eq!(
        refused,
        Err(AppendError::Busy {
            retry_after: std::time::Duration::from_millis(100)
        })
    );
    assert_eq!(elsewhere, Ok(1));
    assert_eq!(
        log.latest(&contract::room("hot")).await.unwrap(),
        Some(3),
        "a refusal takes no seq"
    );
}
