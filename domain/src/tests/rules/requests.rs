use super::*;

#[tokio::test]
async fn an_oversize_body_is_refused_before_anything_is_read_or_sent() {
    let repo = MockConnectionRepository::new(); // any call would panic
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let body = format!(
        r#"{{"action":"sendmessage","data":"{}"}}"#,
        "x".repeat(crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES)
    );

    let handled = service
        .handle_message(&sender("a"), body.as_bytes())
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::TooLarge));
    assert_eq!(outbox.recipients_of_type("error"), vec!["a"]);
    assert!(outbox.recipients_of_type("message").is_empty());
}

#[tokio::test]
async fn an_outbound_frame_over_the_limit_is_refused_before_any_recipient_is_read() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections().never();
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        max_message_bytes: 100,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, settings);
    // 80 bytes in, but the message frame adds from, sentAt and type.
    let body = format!(r#"{{"action":"sendmessage","data":"{}"}}"#, "x".repeat(45));
    assert!(body.len() <= 100);

    let handled = service
        .handle_message(&sender("a"), body.as_bytes())
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::TooLarge));
    assert!(outbox.recipients_of_type("message").is_empty());
}

#[tokio::test]
async fn a_body_that_names_another_sender_changes_nothing() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["b"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(&service, "a", r#"{"action":"sendmessage","data":"hi","from":"mallory","connectionId":"mallory","principal":"admin","sender":"mallory"}"#).await;

    let frame = &outbox.frames_to("b")[0];
    assert_eq!(frame["from"], "a");
    assert_eq!(frame["principal"], "user-a");
}

#[tokio::test]
async fn the_sender_is_left_out_of_its_own_broadcast_when_echo_is_off() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["a", "b"]);
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        echo_to_sender: false,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, settings);

    message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert_eq!(outbox.recipients_of_type("message"), vec!["b"]);
}

#[tokio::test]
async fn a_request_id_is_acknowledged_with_the_delivery_counts() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["a", "b"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(
        &service,
        "a",
        r#"{"action":"sendmessage","data":1,"requestId":"r-7"}"#,
    )
    .await;

    let ack = outbox.first_of_type("a", "ack");
    assert_eq!(
        ack,
        json!({"type":"ack","requestId":"r-7","delivered":2,"gone":0,"failed":0,"queued":false,"requeued":0})
    );
}

#[tokio::test]
async fn a_storage_failure_is_a_service_error_not_a_client_error() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Err(RepositoryError::Unavailable("down".into())));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let result = service
        .handle_message(&sender("a"), br#"{"action":"publish","room":"r","data":1}"#)
        .await;

    assert!(matches!(result, Err(HandleError::Repository(_))));
    assert!(outbox.frames_to("a").is_empty());
}

#[tokio::test]
async fn a_malformed_message_gets_an_error_frame_and_touches_no_storage() {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(
        MockConnectionRepository::new(),
        notifier,
        Settings::default(),
    );

    let handled = message(&service, "a", "{not json").await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::BadJson));
    assert_eq!(outbox.frames_to("a")[0]["type"], "error");
}
