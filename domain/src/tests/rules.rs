use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mockall::predicate::eq;
use serde_json::{Value, json};

use super::harness::*;
use crate::ports::{MockClientNotifier, MockConnectionRepository, MockRoomPolicy};
use crate::protocol::ErrorCode;
use crate::{
    ClientNotifier, ConnectRequest, ConnectionId, DeliveryReport, HandleError, Handled, JoinError,
    Joined, NotifyError, Page, PageToken, Removed, RepositoryError, RoomName, Settings, Timestamp,
    WebSocketService,
};
use crate::{Member, MemberPage, MessageId};

fn one_page(ids: &[&str]) -> Page<ConnectionId> {
    Page {
        items: ids.iter().map(|s| id(s)).collect(),
        next: None,
    }
}

/// A 410's recipient has no row left to check the age of (it is pruned, or an orphan).
fn no_connection_row_to_age(repo: &mut MockConnectionRepository) {
    repo.expect_get().returning(|_, _| Ok(None));
}

fn everyone_is(repo: &mut MockConnectionRepository, ids: &'static [&'static str]) {
    repo.expect_all_connections()
        .returning(move |_, _| Ok(one_page(ids)));
}

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":"hi"}"#)
        .await
        .unwrap();

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

    assert!(matches!(handled, Handled::Done { report, .. } if report.misconfigured == 1));
}

#[tokio::test]
async fn publish_by_a_non_member_is_refused_and_reaches_nobody() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![RoomName::parse("other").unwrap()]));
    repo.expect_member_list().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = service
        .handle_message(
            &sender("a"),
            br#"{"action":"publish","room":"r1","data":1,"requestId":"q"}"#,
        )
        .await
        .unwrap();

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

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"publish","room":"r1","data":{"x":1}}"#,
        )
        .await
        .unwrap();

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

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"sendmessage","data":"hi","from":"mallory","connectionId":"mallory","principal":"admin","sender":"mallory"}"#,
        )
        .await
        .unwrap();

    let frame = &outbox.frames_to("b")[0];
    assert_eq!(frame["from"], "a");
    assert_eq!(frame["principal"], "user-a");
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

    service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

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

    service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();

    assert_eq!(outbox.recipients_of_type("message"), vec!["b"]);
}

#[tokio::test]
async fn a_request_id_is_acknowledged_with_the_delivery_counts() {
    let mut repo = MockConnectionRepository::new();
    everyone_is(&mut repo, &["a", "b"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"sendmessage","data":1,"requestId":"r-7"}"#,
        )
        .await
        .unwrap();

    let ack = outbox.first_of_type("a", "ack");
    assert_eq!(
        ack,
        json!({"type":"ack","requestId":"r-7","delivered":2,"gone":0,"failed":0,"queued":false})
    );
}

#[tokio::test]
async fn ping_is_answered_with_pong_carrying_the_request_id() {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(
        MockConnectionRepository::new(),
        notifier,
        Settings::default(),
    );

    service
        .handle_message(&sender("a"), br#"{"action":"ping","requestId":"p"}"#)
        .await
        .unwrap();

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

    service
        .handle_message(&sender("a"), br#"{"action":"whoami","connectionId":"x"}"#)
        .await
        .unwrap();

    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({"type":"identity","connectionId":"a","principal":"user-a"})]
    );
}

#[tokio::test]
async fn a_direct_send_reaches_only_its_target() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_get()
        .with(eq(id("b")), mockall::predicate::always())
        .returning(|_, _| Ok(Some(connection("b"))));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(&sender("a"), br#"{"action":"send","to":"b","data":[1,2]}"#)
        .await
        .unwrap();

    assert_eq!(outbox.recipients_of_type("message"), vec!["b"]);
    assert_eq!(outbox.frames_to("b")[0]["data"], json!([1, 2]));
}

#[tokio::test]
async fn a_direct_send_to_an_unknown_connection_is_refused() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_get().returning(|_, _| Ok(None));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"send","to":"zz","data":1}"#)
        .await
        .unwrap();

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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"send","to":"b","data":1}"#)
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::UnknownConnection));
}

#[tokio::test]
async fn join_passes_the_room_limit_to_storage_and_reports_too_many_rooms() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join()
        .withf(|_, r, max, _| r.as_str() == "r51" && *max == 50)
        .returning(|_, _, max, _| Err(JoinError::TooManyRooms { max }));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"join","room":"r51"}"#)
        .await
        .unwrap();

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

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"join","room":"r","requestId":"1"}"#,
        )
        .await
        .unwrap();
    service
        .handle_message(
            &sender("a"),
            br#"{"action":"leave","room":"r","requestId":"2"}"#,
        )
        .await
        .unwrap();

    let acks: Vec<_> = outbox
        .frames_to("a")
        .into_iter()
        .map(|f| f["requestId"].clone())
        .collect();
    assert_eq!(acks, vec![json!("1"), json!("2")]);
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

    let handled = service
        .handle_message(&sender("a"), b"{not json")
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::BadJson));
    assert_eq!(outbox.frames_to("a")[0]["type"], "error");
}

/// A connection an hour old: well past `$connect`'s grace.
fn connection(raw: &str) -> crate::Connection {
    crate::Connection {
        id: id(raw),
        connected_at: Timestamp::from_millis(NOW - 3_600_000),
        expires_at: Timestamp::from_millis(NOW + 1),
        principal: None,
        source_ip: None,
        user_agent: None,
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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"typing","room":"r1"}"#)
        .await
        .unwrap();

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

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"typing","room":"r1","requestId":"t1"}"#,
        )
        .await
        .unwrap();

    assert_eq!(
        outbox.frames_to("a"),
        vec![
            json!({"type": "ack", "requestId": "t1", "delivered": 1, "gone": 0, "failed": 0, "queued": false})
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

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"typing","room":"r1"}"#)
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::NotMember));
    assert_eq!(outbox.recipients_of_type("error"), vec!["a"]);
    assert!(outbox.recipients_of_type("typing").is_empty());
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

/// The room's member list, as presence reads it to count the room and reach its members.
fn member_list_is(repo: &mut MockConnectionRepository, ids: &'static [&'static str]) {
    repo.expect_member_list()
        .returning(move |_, _, _, _| Ok(listed(ids)));
}

fn listed(ids: &[&str]) -> MemberPage {
    MemberPage {
        members: ids
            .iter()
            .map(|raw| Member {
                id: id(raw),
                principal: None,
            })
            .collect(),
        next: None,
    }
}

fn presence_frames(outbox: &Outbox) -> Vec<(String, Value)> {
    ["a", "b", "c", "d"]
        .iter()
        .flat_map(|to| {
            outbox
                .frames_to(to)
                .into_iter()
                .filter(|f| f["type"] == "presence")
                .map(|f| (to.to_string(), f))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_new_member_is_announced_to_the_others_and_not_to_itself() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join().returning(|_, _, _, _| Ok(Joined::Added));
    member_list_is(&mut repo, &["a", "b", "c"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(&sender("a"), br#"{"action":"join","room":"r1"}"#)
        .await
        .unwrap();

    let joined = json!({"type": "presence", "room": "r1", "event": "joined", "connectionId": "a", "principal": "user-a"});
    assert_eq!(
        presence_frames(&outbox),
        vec![("b".to_string(), joined.clone()), ("c".to_string(), joined)]
    );
}

#[tokio::test]
async fn joining_a_room_twice_announces_nothing_the_second_time() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join()
        .returning(|_, _, _, _| Ok(Joined::AlreadyMember));
    repo.expect_members_of().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(&sender("a"), br#"{"action":"join","room":"r1"}"#)
        .await
        .unwrap();

    assert!(presence_frames(&outbox).is_empty());
}

#[tokio::test]
async fn a_room_larger_than_the_presence_cap_gets_no_presence_events() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join().returning(|_, _, _, _| Ok(Joined::Added));
    // Counting a room reads at most one member more than the cap, however large the room.
    repo.expect_member_list()
        .withf(|_, _, limit, _| *limit == 4)
        .returning(|_, _, _, _| Ok(listed(&["a", "b", "c", "d"])));
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        presence_max_members: 3,
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, settings);

    service
        .handle_message(&sender("a"), br#"{"action":"join","room":"r1"}"#)
        .await
        .unwrap();

    assert!(presence_frames(&outbox).is_empty());
}

#[tokio::test]
async fn leaving_a_room_one_was_in_is_announced_to_those_who_stay() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_leave().times(1).returning(|_, _| Ok(()));
    member_list_is(&mut repo, &["b"]);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(&sender("a"), br#"{"action":"leave","room":"r1"}"#)
        .await
        .unwrap();

    assert_eq!(
        presence_frames(&outbox),
        vec![(
            "b".to_string(),
            json!({"type": "presence", "room": "r1", "event": "left", "connectionId": "a", "principal": "user-a"})
        )]
    );
}

#[tokio::test]
async fn disconnect_announces_the_departure_to_every_room_the_connection_was_in() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_remove().returning(|_| {
        Ok(Removed {
            connection: None,
            rooms: vec![room("r1"), room("r2")],
        })
    });
    repo.expect_member_list()
        .returning(|r, _, _, _| Ok(listed(if r.as_str() == "r1" { &["b"] } else { &["c"] })));
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service.disconnect(&id("a")).await.unwrap();

    let rooms: Vec<(String, Value)> = presence_frames(&outbox)
        .into_iter()
        .map(|(to, f)| (to, f["room"].clone()))
        .collect();
    assert_eq!(
        rooms,
        vec![
            ("b".to_string(), json!("r1")),
            ("c".to_string(), json!("r2"))
        ]
    );
}

#[tokio::test]
async fn a_member_pruned_after_a_410_is_announced_as_left_to_its_rooms() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of()
        .returning(|_, _, _| Ok(one_page(&["a", "b", "gone"])));
    member_list_is(&mut repo, &["a", "b"]);
    no_connection_row_to_age(&mut repo);
    repo.expect_remove()
        .with(eq(id("gone")))
        .times(1)
        .returning(|_| {
            Ok(Removed {
                connection: None,
                rooms: vec![room("r1")],
            })
        });
    let outbox = Outbox::default();
    let recorded = outbox.clone();
    let mut notifier = MockClientNotifier::new();
    notifier.expect_send().returning(move |to, frame| {
        if to.as_str() == "gone" {
            return Err(NotifyError::Gone);
        }
        recorded.record(to, frame);
        Ok(())
    });
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"publish","room":"r1","data":1}"#,
        )
        .await
        .unwrap();

    let left: Vec<String> = presence_frames(&outbox)
        .into_iter()
        .filter(|(_, f)| f["event"] == "left" && f["connectionId"] == "gone")
        .map(|(to, _)| to)
        .collect();
    assert_eq!(left, vec!["a", "b"]);
}

#[tokio::test]
async fn the_member_list_answers_a_member_with_a_page_and_a_cursor() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_member_list()
        .withf(|r, after, limit, _| {
            r.as_str() == "r1" && after.as_ref().map(|a| a.as_str()) == Some("b") && *limit == 100
        })
        .returning(|_, _, _, _| {
            Ok(MemberPage {
                members: vec![Member {
                    id: id("c"),
                    principal: None,
                }],
                next: Some(id("c")),
            })
        });
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"members","room":"r1","cursor":"b","requestId":"m"}"#,
        )
        .await
        .unwrap();

    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({
            "type": "members", "room": "r1", "count": 1, "cursor": "c", "requestId": "m",
            "members": [{"connectionId": "c", "principal": null}],
        })]
    );
}

#[tokio::test]
async fn the_member_list_is_refused_to_a_non_member() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of().returning(|_, _| Ok(vec![]));
    repo.expect_member_list().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = service
        .handle_message(&sender("a"), br#"{"action":"members","room":"r1"}"#)
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::NotMember));
    assert_eq!(outbox.frames_to("a")[0]["code"], "not_member");
}

#[test]
fn the_largest_members_frame_fits_the_message_limit() {
    let members: Vec<Member> = (0..crate::service::MEMBERS_PER_FRAME)
        .map(|i| Member {
            // Quotes escape to two bytes each: the longest an id and a principal can encode to.
            id: id(&format!("{i:\"<128}")),
            principal: Some(crate::Principal::parse("\"".repeat(256)).unwrap()),
        })
        .collect();
    let room = room(&"r".repeat(64));
    let cursor = id(&"z".repeat(128));
    let request_id = crate::protocol::RequestId::parse("q".repeat(128)).unwrap();
    let frame = crate::protocol::Frame::Members {
        room: &room,
        members: &members,
        count: members.len(),
        cursor: Some(&cursor),
        request_id: Some(&request_id),
    };

    let encoded = crate::protocol::encode(&frame, crate::protocol::API_GATEWAY_MAX_MESSAGE_BYTES);

    assert!(encoded.is_ok(), "{:?}", encoded.map(|b| b.len()));
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

    let handled = service
        .handle_message(
            &sender("a"),
            br#"{"action":"publish","room":"r1","data":1}"#,
        )
        .await
        .unwrap();

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
    service
        .handle_message(&sender("a"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();
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
