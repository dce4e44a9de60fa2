use super::*;

#[tokio::test]
async fn join_passes_the_room_limit_to_storage_and_reports_too_many_rooms() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join()
        .withf(|_, r, max, _| r.as_str() == "r51" && *max == 50)
        .returning(|_, _, max, _| Err(JoinError::TooManyRooms { max }));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"join","room":"r51"}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::TooManyRooms));
    assert_eq!(outbox.frames_to("a")[0]["code"], "too_many_rooms");
}

#[tokio::test]
async fn join_and_leave_are_acknowledged_when_a_request_id_is_given() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join()
        .times(1)
        .returning(|_, _, _, _| Ok(Joined::Added));
    repo.expect_leave()
        .with(eq(id("a")), eq(room("r")))
        .times(1)
        .returning(|_, _| Ok(()));
    let (notifier, outbox) = accepting_notifier();
    let presence_off = Settings {
        presence_max_members: 0,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, presence_off);

    message(
        &service,
        "a",
        r#"{"action":"join","room":"r","requestId":"1"}"#,
    )
    .await;
    message(
        &service,
        "a",
        r#"{"action":"leave","room":"r","requestId":"2"}"#,
    )
    .await;

    let acks: Vec<_> = outbox
        .frames_to("a")
        .into_iter()
        .map(|f| f["requestId"].clone())
        .collect();
    assert_eq!(acks, vec![json!("1"), json!("2")]);
}
