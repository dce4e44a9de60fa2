use super::*;

fn member_of_r1_with_room(repo: &mut MockConnectionRepository, members: &'static [&'static str]) {
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of()
        .withf(|r, _, _| r.as_str() == "r1")
        .returning(move |_, _, _| Ok(one_page(members)));
}

#[tokio::test]
async fn typing_reaches_the_other_members_and_never_the_typist_even_with_echo_on() {
    // No save, join or leave expectation: typing stores nothing.
    let mut repo = MockConnectionRepository::new();
    member_of_r1_with_room(&mut repo, &["a", "b", "c"]);
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        echo_to_sender: true,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, settings);

    let handled = message(&service, "a", r#"{"action":"typing","room":"r1"}"#).await;

    assert_eq!(outbox.recipients_of_type("typing"), vec!["b", "c"]);
    assert_eq!(
        outbox.frames_to("b")[0],
        json!({"type": "typing", "from": "a", "principal": "user-a", "room": "r1"})
    );
    assert!(
        outbox.frames_to("a").is_empty(),
        "no ack without a requestId"
    );
    assert!(matches!(handled, Handled::Done { action: "typing", report } if report.delivered == 2));
}

#[tokio::test]
async fn typing_with_a_request_id_is_acknowledged_with_the_recipient_count() {
    let mut repo = MockConnectionRepository::new();
    member_of_r1_with_room(&mut repo, &["a", "b"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(
        &service,
        "a",
        r#"{"action":"typing","room":"r1","requestId":"t1"}"#,
    )
    .await;

    assert_eq!(
        outbox.frames_to("a"),
        vec![
            json!({"type": "ack", "requestId": "t1", "delivered": 1, "gone": 0, "failed": 0, "queued": false, "requeued": 0})
        ]
    );
}

#[tokio::test]
async fn typing_by_a_non_member_is_refused_and_reaches_nobody() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("other")]));
    repo.expect_members_of().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"typing","room":"r1"}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::NotMember));
    assert_eq!(outbox.recipients_of_type("error"), vec!["a"]);
    assert!(outbox.recipients_of_type("typing").is_empty());
}

#[tokio::test]
async fn with_typing_switched_off_typing_is_an_unknown_action_and_reaches_nobody() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of().never();
    repo.expect_members_of().never();
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        typing: false,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, settings);

    let handled = message(&service, "a", r#"{"action":"typing","room":"r1"}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::UnknownAction));
    assert_eq!(
        outbox.frames_to("a")[0]["message"],
        "typing is switched off on this service"
    );
}
