use super::*;

#[tokio::test]
async fn a_direct_send_reaches_only_its_target() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_get()
        .with(eq(id("b")), mockall::predicate::always())
        .returning(|_, _| Ok(Some(connection("b"))));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(&service, "a", r#"{"action":"send","to":"b","data":[1,2]}"#).await;

    assert_eq!(outbox.recipients_of_type("message"), vec!["b"]);
    assert_eq!(outbox.frames_to("b")[0]["data"], json!([1, 2]));
}

#[tokio::test]
async fn a_direct_send_to_an_unknown_connection_is_refused() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_get().returning(|_, _| Ok(None));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"send","to":"zz","data":1}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::UnknownConnection));
    assert_eq!(outbox.frames_to("a")[0]["code"], "unknown_connection");
}

#[tokio::test]
async fn a_direct_send_to_a_connection_that_turns_out_gone_prunes_it_and_tells_the_sender() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_get()
        .returning(|_, _| Ok(Some(connection("b"))));
    repo.expect_remove()
        .with(eq(id("b")))
        .times(1)
        .returning(|_| Ok(Removed::default()));
    let outbox = Outbox::default();
    let mut notifier = MockClientNotifier::new();
    let recorded = outbox.clone();
    notifier.expect_send().returning(move |to, frame| {
        if to.as_str() == "b" {
            return Err(NotifyError::Gone);
        }
        recorded.record(to, frame);
        Ok(())
    });
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"send","to":"b","data":1}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::UnknownConnection));
}
