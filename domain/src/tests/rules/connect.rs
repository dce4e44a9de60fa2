use super::*;

#[tokio::test]
async fn connect_stores_the_connection_until_two_hours_plus_margin_and_sends_nothing() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save()
        .withf(|c| c.id.as_str() == "a" && c.principal.is_none())
        .times(1)
        .returning(|_| Ok(()));
    // No expectation on the notifier: any post would fail the test.
    let settings = Settings {
        ttl_margin: Duration::from_secs(60),
        ..Settings::default()
    };
    let (service, _) = service(repo, MockClientNotifier::new(), settings);

    let connection = service
        .connect(ConnectRequest::new(id("a"), Timestamp::from_millis(1_000)))
        .await
        .unwrap();

    assert_eq!(
        connection.expires_at,
        Timestamp::from_millis(1_000 + (2 * 3600 + 60) * 1000)
    );
}

#[tokio::test]
async fn connect_reports_a_storage_failure() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save()
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    let (service, _) = service(repo, MockClientNotifier::new(), Settings::default());

    let result = service
        .connect(ConnectRequest::new(id("a"), Timestamp::from_millis(0)))
        .await;

    assert!(result.is_err());
}

#[tokio::test]
async fn disconnect_of_an_unknown_connection_is_not_an_error() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_remove()
        .with(eq(id("ghost")))
        .times(1)
        .returning(|_| Ok(Removed::default()));
    let (service, _) = service(repo, MockClientNotifier::new(), Settings::default());

    assert_eq!(
        service.disconnect(&id("ghost")).await,
        Ok(Removed::default())
    );
}
