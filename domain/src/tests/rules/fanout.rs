use super::*;

#[tokio::test]
async fn a_gone_recipient_is_removed_with_its_memberships_and_counted_as_gone() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["a", "b", "gone"]);
    no_connection_row_to_age(&mut repo);
    repo.expect_remove()
        .with(eq(id("gone")))
        .times(1)
        .returning(|_| Ok(Removed::default()));
    let mut notifier = MockClientNotifier::new();
    notifier.expect_send().returning(|to, _| {
        if to.as_str() == "gone" {
            Err(NotifyError::Gone)
        } else {
            Ok(())
        }
    });
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"sendmessage","data":"hi"}"#).await;

    assert_eq!(
        handled,
        Handled::Done {
            action: "sendmessage",
            report: DeliveryReport {
                delivered: 2,
                gone: 1,
                ..DeliveryReport::default()
            }
        }
    );
}

#[tokio::test]
async fn a_throttled_post_is_retried_after_a_jittered_pause_then_delivered() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["b"]);
    let mut notifier = MockClientNotifier::new();
    let mut seq = mockall::Sequence::new();
    notifier
        .expect_send()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(NotifyError::Throttled));
    notifier
        .expect_send()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let settings = Settings::default();
    let ceiling = settings.retry.ceiling(1);
    let (service, sleeper) = service(repo, notifier, settings);

    let handled = message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert!(
        matches!(handled, Handled::Done { report, .. } if report.delivered == 1 && report.failed == 0)
    );
    assert!(
        matches!(handled, Handled::Done { report, .. } if report.throttled == 1 && report.retried == 1),
        "the report counts the 429 and the retry it cost: {handled:?}"
    );
    let pauses = sleeper.pauses.lock().unwrap();
    assert_eq!(pauses.len(), 1);
    assert!(pauses[0] <= ceiling);
}

#[tokio::test]
async fn transient_failures_are_retried_up_to_the_attempt_limit_then_counted_as_failed() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["b"]);
    let mut notifier = MockClientNotifier::new();
    notifier
        .expect_send()
        .times(3)
        .returning(|_, _| Err(NotifyError::Transient("503".into())));
    let (service, sleeper) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert!(
        matches!(handled, Handled::Done { report, .. } if report.failed == 1 && report.delivered == 0)
    );
    assert!(
        matches!(handled, Handled::Done { report, .. } if report.retried == 2 && report.throttled == 0),
        "two retries, and a 503 is no throttle: {handled:?}"
    );
    assert_eq!(sleeper.pauses.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_forbidden_post_is_not_retried_and_is_reported_as_a_configuration_fault() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["b"]);
    let mut notifier = MockClientNotifier::new();
    notifier
        .expect_send()
        .times(1)
        .returning(|_, _| Err(NotifyError::Forbidden("wrong stage".into())));
    let (service, sleeper) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert!(
        matches!(handled, Handled::Done { report, .. } if report.failed == 1 && report.misconfigured == 1)
    );
    assert!(sleeper.pauses.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_payload_too_large_answer_is_not_retried() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["b"]);
    let mut notifier = MockClientNotifier::new();
    notifier
        .expect_send()
        .times(1)
        .returning(|_, _| Err(NotifyError::PayloadTooLarge));
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert!(matches!(handled, Handled::Done { report, .. } if report.misconfigured == 1));
}

#[tokio::test]
async fn a_fan_out_across_three_pages_reaches_every_recipient() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections()
        .times(3)
        .returning(|token, _| {
            let (ids, next) = match token.as_ref().map(PageToken::as_str) {
                None => (vec!["a", "b"], Some("p2")),
                Some("p2") => (vec![], Some("p3")), // an empty page that is not the last
                Some("p3") => (vec!["c", "d", "e"], None),
                Some(other) => panic!("unexpected token {other}"),
            };
            Ok(Page {
                items: ids.into_iter().map(id).collect(),
                next: next.map(PageToken::new),
            })
        });
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert_eq!(
        outbox.recipients_of_type("message"),
        vec!["a", "b", "c", "d", "e"]
    );
}

#[tokio::test]
async fn a_read_failure_mid_fan_out_is_an_error_carrying_what_was_delivered() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections()
        .returning(|token, _| match token {
            None => Ok(Page {
                items: vec![id("b")],
                next: Some(PageToken::new("p2")),
            }),
            Some(_) => Err(RepositoryError::Throttled("slow down".into())),
        });
    let (notifier, _) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let result = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await;

    match result {
        Err(HandleError::FanOut(e)) => assert_eq!(e.report.delivered, 1),
        other => panic!("expected a fan-out error, got {other:?}"),
    }
}

/// Sends a `sendmessage` from `from` with at most `bound` posts in flight, through a notifier
/// that counts them.
async fn broadcast_counting_posts_in_flight(
    repo: MockConnectionRepository,
    bound: usize,
    from: &str,
) -> Arc<InFlightNotifier> {
    let notifier = Arc::new(InFlightNotifier::default());
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(bound).unwrap(),
        ..Settings::default()
    };
    let service = WebSocketService::new(
        repo,
        notifier.clone(),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        settings,
    );
    service
        .handle_message(&sender(from), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();
    notifier
}

/// Counts sends in flight; each send yields to the scheduler a few times so others can start.
/// Recipients whose id starts with `gone` answer 410.
#[derive(Default)]
struct InFlightNotifier {
    now: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicUsize,
}

#[async_trait]
impl ClientNotifier for InFlightNotifier {
    async fn send(&self, to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(current, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        if to.as_str().starts_with("gone") {
            return Err(NotifyError::Gone);
        }
        Ok(())
    }

    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

#[tokio::test]
async fn sends_in_flight_reach_but_never_exceed_the_concurrency_bound_across_pages() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections().returning(|token, _| {
        let page: usize = token.map_or(0, |t| t.as_str().parse().unwrap());
        let items = (0..10).map(|i| id(&format!("c{page}-{i}"))).collect();
        let next = (page < 9).then(|| PageToken::new((page + 1).to_string()));
        Ok(Page { items, next })
    });
    let notifier = broadcast_counting_posts_in_flight(repo, 8, "c0-0").await;

    assert_eq!(notifier.total.load(Ordering::SeqCst), 100);
    assert_eq!(notifier.peak.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn posts_in_flight_stay_within_the_bound_when_gone_recipients_are_announced_to_their_rooms() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections().returning(|_, _| {
        let ids = (0..40).map(|i| id(&format!("{}{i}", if i % 2 == 0 { "gone" } else { "live" })));
        Ok(Page {
            items: ids.collect(),
            next: None,
        })
    });
    no_connection_row_to_age(&mut repo);
    repo.expect_remove().returning(|_| {
        Ok(Removed {
            connection: None,
            rooms: vec![room("r1")],
        })
    });
    repo.expect_member_list().returning(|_, _, _, _| {
        let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(listed(&refs))
    });
    let notifier = broadcast_counting_posts_in_flight(repo, 4, "live1").await;

    // 40 posts, then 16 departures (the cap) announced to 20 members each.
    assert_eq!(notifier.total.load(Ordering::SeqCst), 40 + 16 * 20);
    assert_eq!(notifier.peak.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_410_from_a_room_member_whose_connection_is_already_gone_deletes_the_orphan_membership() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of()
        .returning(|_, _, _| Ok(one_page(&["a", "orphan"])));
    // The connection row went with an earlier `remove` whose membership deletes failed.
    no_connection_row_to_age(&mut repo);
    repo.expect_remove()
        .with(eq(id("orphan")))
        .returning(|_| Ok(Removed::default()));
    repo.expect_leave()
        .with(eq(id("orphan")), eq(room("r1")))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut notifier = MockClientNotifier::new();
    notifier.expect_send().returning(|to, _| {
        if to.as_str() == "orphan" {
            Err(NotifyError::Gone)
        } else {
            Ok(())
        }
    });
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":1}"#,
    )
    .await;

    assert!(matches!(handled, Handled::Done { report, .. } if report.gone == 1));
}

/// A `sendmessage` to everyone, where `young` answers 410 and was connected `age_ms` ago.
/// Returns how many times its row was removed.
async fn gone_recipient_of_age(age_ms: u64) -> usize {
    let removed = Arc::new(AtomicUsize::new(0));
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["a", "young"]);
    repo.expect_get().returning(move |id, _| {
        Ok(Some(crate::Connection {
            connected_at: Timestamp::from_millis(NOW - age_ms),
            ..connection(id.as_str())
        }))
    });
    let count = removed.clone();
    repo.expect_remove().returning(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(Removed::default())
    });
    let mut notifier = MockClientNotifier::new();
    notifier.expect_send().returning(|to, _| {
        if to.as_str() == "young" {
            Err(NotifyError::Gone)
        } else {
            Ok(())
        }
    });
    let (service, _) = service(repo, notifier, Settings::default());
    message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;
    removed.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_410_for_a_connection_whose_connect_may_still_be_running_keeps_its_row() {
    // Connected 30 s ago: past API Gateway's 29 s, but inside the clock-skew margin.
    assert_eq!(gone_recipient_of_age(30_000).await, 0);
}

#[tokio::test]
async fn a_410_for_a_connection_older_than_the_connect_grace_removes_it() {
    let grace = crate::connection::CONNECT_GRACE.as_millis() as u64;
    assert_eq!(gone_recipient_of_age(grace).await, 1);
}

#[tokio::test]
async fn a_margin_near_the_largest_duration_saturates_instead_of_panicking() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save().returning(|_| Ok(()));
    let settings = Settings {
        ttl_margin: Duration::MAX,
        ..Settings::default()
    };
    let (service, _) = service(repo, MockClientNotifier::new(), settings);

    let connection = service
        .connect(ConnectRequest::new(id("a"), Timestamp::from_millis(1_000)))
        .await
        .unwrap();

    assert_eq!(connection.expires_at, Timestamp::from_millis(u64::MAX));
}
