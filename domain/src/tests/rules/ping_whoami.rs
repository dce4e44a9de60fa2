use super::*;

#[tokio::test]
async fn ping_is_answered_with_pong_carrying_the_request_id() {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(
        MockConnectionRepository::new(),
        notifier,
        Settings::default(),
    );

    message(&service, "a", r#"{"action":"ping","requestId":"p"}"#).await;

    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({"type":"pong","requestId":"p"})]
    );
}

#[tokio::test]
async fn whoami_answers_with_the_connection_id_and_principal_from_the_request_context() {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(
        MockConnectionRepository::new(),
        notifier,
        Settings::default(),
    );

    message(&service, "a", r#"{"action":"whoami","connectionId":"x"}"#).await;

    assert_eq!(
        outbox.frames_to("a"),
        vec![
            json!({"type":"identity","connectionId":"a","principal":"user-a","protocolVersion":3})
        ]
    );
}

#[tokio::test]
async fn ping_and_whoami_answer_with_their_own_frame_and_no_ack() {
    let repo = MockConnectionRepository::new(); // any call would panic
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    for body in [
        br#"{"action":"ping","requestId":"p"}"#.as_slice(),
        br#"{"action":"whoami","requestId":"w"}"#.as_slice(),
    ] {
        service.handle_message(&sender("a"), body).await.unwrap();
    }

    let types: Vec<Value> = outbox
        .frames_to("a")
        .iter()
        .map(|f| f["type"].clone())
        .collect();
    assert_eq!(types, vec![json!("pong"), json!("identity")]);
}
