//! Room streams: each room message gets the next `seq`, kept for the history's retention;
//! `history` pages through it; `join {since}` replays what a member missed after its `ack`, or
//! says `reset`; a room over its rate is `room_busy`, never reordered.

use super::*;

use crate::stream::{Keep, LoggedMessage, RoomLog};

fn member_of(rooms: &'static [&'static str]) -> MockConnectionRepository {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(move |_, _| Ok(rooms.iter().map(|r| room(r)).collect()));
    repo.expect_members_of()
        .returning(|_, _, _| Ok(one_page(&["a", "b"])));
    repo.expect_join()
        .returning(|_, _, _, _| Ok(Joined::AlreadyMember));
    repo.expect_all_connections()
        .returning(|_, _| Ok(one_page(&["a", "b"])));
    repo
}

fn with_log(
    repo: MockConnectionRepository,
    log: Arc<FakeLog>,
    settings: Settings,
) -> (TestService, Outbox) {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, settings);
    (service.with_room_log(log), outbox)
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["seq"].as_u64())
        .collect()
}

#[tokio::test]
async fn each_room_message_takes_the_next_seq_and_every_copy_carries_it() {
    let log = Arc::new(FakeLog::default());
    let (service, outbox) = with_log(member_of(&["r1"]), log.clone(), Settings::default());

    for _ in 0..3 {
        message(
            &service,
            "a",
            r#"{"action":"publish","room":"r1","data":"x"}"#,
        )
        .await;
    }
    message(
        &service,
        "a",
        r#"{"action":"sendmessage","data":"not a room's"}"#,
    )
    .await;

    assert_eq!(seqs(&outbox.frames_to("b")), vec![1, 2, 3]);
    assert_eq!(seqs(&outbox.frames_to("a")), vec![1, 2, 3]);
    let everyone = outbox.frames_to("b").pop().unwrap();
    assert_eq!(
        everyone["seq"],
        Value::Null,
        "only room messages have a seq"
    );
    let keep = log.keeps.lock().unwrap()[0];
    assert_eq!(
        keep,
        Keep {
            message_until: Some(Timestamp::from_millis(NOW + 24 * 3600 * 1000)),
            once_until: None,
        },
        "a client's publish is kept for the history's retention, and appended once"
    );
}

#[tokio::test]
async fn with_history_off_messages_still_take_a_seq_but_nothing_is_kept() {
    let log = Arc::new(FakeLog::default());
    let settings = Settings {
        history_ttl: Duration::ZERO,
        ..Settings::default()
    };
    let (service, outbox) = with_log(member_of(&["r1"]), log.clone(), settings);

    message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":"x"}"#,
    )
    .await;

    assert_eq!(seqs(&outbox.frames_to("b")), vec![1]);
    assert_eq!(log.keeps.lock().unwrap()[0].message_until, None);
}

#[tokio::test]
async fn a_room_over_its_rate_is_busy_and_nothing_is_published() {
    let log = Arc::new(FakeLog {
        busy: true,
        ..FakeLog::default()
    });
    let mut repo = member_of(&["r1"]);
    repo.checkpoint();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of().never();
    let (service, outbox) = with_log(repo, log, Settings::default());

    let handled = message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":"x","requestId":"q"}"#,
    )
    .await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::RoomBusy));
    let error = &outbox.frames_to("a")[0];
    assert_eq!(error["code"], "room_busy");
    assert_eq!(error["retryAfterMs"], 250);
    assert!(outbox.frames_to("b").is_empty());
}

#[tokio::test]
async fn a_message_too_large_to_frame_takes_no_seq() {
    let log = Arc::new(FakeLog::default());
    let settings = Settings {
        max_message_bytes: 200,
        ..Settings::default()
    };
    let (service, _) = with_log(member_of(&["r1"]), log.clone(), settings);
    let big = format!(
        r#"{{"action":"publish","room":"r1","data":"{}"}}"#,
        "x".repeat(150)
    );

    let handled = message(&service, "a", &big).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::TooLarge));
    assert_eq!(log.latest(&room("r1")).await.unwrap(), None);
}

#[tokio::test]
async fn join_since_acks_first_then_replays_every_later_message_in_order() {
    let log = Arc::new(FakeLog::with(250));
    let (service, outbox) = with_log(member_of(&[]), log, Settings::default());

    message(
        &service,
        "a",
        r#"{"action":"join","room":"r1","since":3,"requestId":"j"}"#,
    )
    .await;

    let frames = outbox.frames_to("a");
    assert_eq!(frames[0]["type"], "ack");
    assert_eq!(frames[0]["requestId"], "j");
    let mut replayed = seqs(&frames[1..]);
    assert_eq!(replayed.len(), 247, "4 to 250, across pages");
    replayed.sort_unstable();
    assert_eq!(replayed, (4..=250).collect::<Vec<u64>>());
    let one = frames.iter().find(|f| f["seq"] == 4).unwrap();
    assert_eq!(one["id"], "m4");
    assert_eq!(one["room"], "r1");
    assert_eq!(one["sentAt"], 4, "as it was sent live");
}

#[tokio::test]
async fn join_since_the_latest_replays_nothing() {
    let log = Arc::new(FakeLog::with(5));
    let (service, outbox) = with_log(member_of(&[]), log, Settings::default());

    message(&service, "a", r#"{"action":"join","room":"r1","since":5}"#).await;

    assert!(
        outbox.frames_to("a").is_empty(),
        "no requestId, no ack, nothing to replay"
    );
}

#[tokio::test]
async fn join_since_older_than_the_history_keeps_says_reset_with_the_oldest_kept() {
    let log = Arc::new(FakeLog::with(10));
    *log.oldest.lock().unwrap() = 6;
    let (service, outbox) = with_log(member_of(&[]), log, Settings::default());

    message(&service, "a", r#"{"action":"join","room":"r1","since":2}"#).await;

    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({"type": "reset", "room": "r1", "oldestSeq": 6})]
    );
}

#[tokio::test]
async fn join_since_just_before_the_oldest_kept_replays_without_a_gap() {
    let log = Arc::new(FakeLog::with(10));
    *log.oldest.lock().unwrap() = 6;
    let (service, outbox) = with_log(member_of(&[]), log, Settings::default());

    message(&service, "a", r#"{"action":"join","room":"r1","since":5}"#).await;

    let mut replayed = seqs(&outbox.frames_to("a"));
    replayed.sort_unstable();
    assert_eq!(replayed, vec![6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn join_since_too_far_behind_says_reset_rather_than_replaying_without_end() {
    let log = Arc::new(FakeLog::with(crate::stream::REPLAY_MAX_MESSAGES + 2));
    let (service, outbox) = with_log(member_of(&[]), log, Settings::default());

    message(&service, "a", r#"{"action":"join","room":"r1","since":1}"#).await;

    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({"type": "reset", "room": "r1", "oldestSeq": 1})]
    );
}

#[tokio::test]
async fn with_history_off_join_since_says_reset_and_history_says_history_off() {
    let log = Arc::new(FakeLog::with(3));
    let settings = Settings {
        history_ttl: Duration::ZERO,
        ..Settings::default()
    };
    let (service, outbox) = with_log(member_of(&["r1"]), log, settings);

    message(&service, "a", r#"{"action":"join","room":"r1","since":1}"#).await;
    let handled = message(&service, "a", r#"{"action":"history","room":"r1"}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::HistoryOff));
    let frames = outbox.frames_to("a");
    assert_eq!(frames[0], json!({"type": "reset", "room": "r1"}));
    assert_eq!(frames[1]["code"], "history_off");
}

async fn history(service: &TestService, outbox: &Outbox, request: Value) -> Value {
    let before = outbox.frames_to("a").len();
    message(service, "a", &request.to_string()).await;
    outbox.frames_to("a")[before].clone()
}

fn page_seqs(frame: &Value) -> Vec<u64> {
    frame["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn history_pages_up_from_the_oldest_and_the_cursor_continues_to_the_last_page() {
    let log = Arc::new(FakeLog::with(7));
    let (service, outbox) = with_log(member_of(&["r1"]), log, Settings::default());

    let first = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "limit": 3, "requestId": "h"}),
    )
    .await;
    let second = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "cursor": first["cursor"]}),
    )
    .await;

    assert_eq!(first["type"], "history");
    assert_eq!(first["requestId"], "h");
    assert_eq!(page_seqs(&first), vec![1, 2, 3]);
    assert_eq!(first["messages"][0]["type"], "message");
    assert_eq!(first["messages"][0]["id"], "m1");
    assert_eq!(page_seqs(&second), vec![4, 5, 6, 7]);
    assert_eq!(second["cursor"], Value::Null, "the last page has no cursor");
}

#[tokio::test]
async fn history_pages_down_from_before_each_page_in_seq_order() {
    let log = Arc::new(FakeLog::with(7));
    let (service, outbox) = with_log(member_of(&["r1"]), log, Settings::default());

    let first = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "before": 7, "limit": 4}),
    )
    .await;
    let second = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "cursor": first["cursor"], "limit": 4}),
    )
    .await;

    assert_eq!(page_seqs(&first), vec![3, 4, 5, 6]);
    assert_eq!(page_seqs(&second), vec![1, 2]);
    assert_eq!(second["cursor"], Value::Null);
}

#[tokio::test]
async fn history_between_after_and_before_stops_before_it() {
    let log = Arc::new(FakeLog::with(9));
    let (service, outbox) = with_log(member_of(&["r1"]), log, Settings::default());

    let page = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "after": 2, "before": 6}),
    )
    .await;

    assert_eq!(page_seqs(&page), vec![3, 4, 5]);
    assert_eq!(page["cursor"], Value::Null);
}

#[tokio::test]
async fn a_history_page_stops_at_the_frame_limit_and_the_cursor_picks_up_after_it() {
    let log = Arc::new(FakeLog::default());
    for seq in 1..=5u64 {
        log.messages.lock().unwrap().push(LoggedMessage {
            id: crate::MessageId::parse(format!("m{seq}")).unwrap(),
            seq,
            from: None,
            principal: None,
            data: format!("\"{}\"", "x".repeat(300)),
            sent_at: seq,
        });
    }
    let settings = Settings {
        max_message_bytes: 1_000,
        ..Settings::default()
    };
    let (service, outbox) = with_log(member_of(&["r1"]), log, settings);

    let first = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1"}),
    )
    .await;
    let second = history(
        &service,
        &outbox,
        json!({"action": "history", "room": "r1", "cursor": first["cursor"]}),
    )
    .await;

    assert_eq!(page_seqs(&first), vec![1, 2]);
    assert!(first.to_string().len() <= 1_000);
    assert_eq!(page_seqs(&second), vec![3, 4]);
}

#[tokio::test]
async fn history_is_for_members_and_refuses_a_cursor_of_another_room() {
    let log = Arc::new(FakeLog::with(3));
    let (service, outbox) = with_log(member_of(&["r1"]), log, Settings::default());
    let other = crate::protocol::cursor::encode(&room("r2"), "a1");

    let not_member = message(&service, "a", r#"{"action":"history","room":"r2"}"#).await;
    let bad_cursor = message(
        &service,
        "a",
        &json!({"action": "history", "room": "r1", "cursor": other}).to_string(),
    )
    .await;

    assert_eq!(not_member, Handled::Rejected(ErrorCode::NotMember));
    assert_eq!(bad_cursor, Handled::Rejected(ErrorCode::InvalidField));
    assert_eq!(outbox.frames_to("a").len(), 2);
}
