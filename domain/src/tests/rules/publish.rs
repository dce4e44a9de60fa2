use super::*;

#[tokio::test]
async fn publish_by_a_non_member_is_refused_and_reaches_nobody() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![RoomName::parse("other").unwrap()]));
    repo.expect_member_list().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":1,"requestId":"q"}"#,
    )
    .await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::NotMember));
    let frames = outbox.frames_to("a");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["code"], "not_member");
    assert_eq!(frames[0]["requestId"], "q");
}

#[tokio::test]
async fn publish_by_a_member_reaches_the_room_with_the_room_named() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![RoomName::parse("r1").unwrap()]));
    repo.expect_members_of()
        .withf(|r, _, _| r.as_str() == "r1")
        .returning(|_, _, _| Ok(one_page(&["a", "b"])));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":{"x":1}}"#,
    )
    .await;

    assert_eq!(outbox.recipients_of_type("message"), vec!["a", "b"]);
    let frame = &outbox.frames_to("b")[0];
    assert_eq!(frame["room"], "r1");
    assert_eq!(frame["data"], json!({"x": 1}));
    assert_eq!(frame["from"], "a");
    assert_eq!(frame["sentAt"], NOW);
    let id = frame["id"].as_str().unwrap_or_default();
    assert!(MessageId::parse(id).is_ok() && !id.is_empty(), "{frame}");
    assert_eq!(outbox.frames_to("a")[0]["id"], id, "one message, one id");
}

#[tokio::test]
async fn the_room_policy_can_refuse_a_join_or_a_publish_with_forbidden() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join().never();
    repo.expect_rooms_of().never();
    let mut policy = MockRoomPolicy::new();
    policy
        .expect_allows()
        .withf(|_, r, _| r.as_str() == "team-42:general")
        .returning(|_, _, _| false);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let service = service.with_room_policy(Arc::new(policy));

    for body in [
        br#"{"action":"join","room":"team-42:general"}"#.as_slice(),
        br#"{"action":"publish","room":"team-42:general","data":1}"#.as_slice(),
        br#"{"action":"typing","room":"team-42:general"}"#.as_slice(),
    ] {
        let handled = service.handle_message(&sender("a"), body).await.unwrap();
        assert_eq!(handled, Handled::Rejected(ErrorCode::Forbidden));
    }
    let codes: Vec<Value> = outbox
        .frames_to("a")
        .iter()
        .map(|f| f["code"].clone())
        .collect();
    assert_eq!(codes, vec![json!("forbidden"); 3]);
}
