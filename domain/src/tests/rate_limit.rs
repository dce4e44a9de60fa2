//! The rate limit in the service: which messages spend a token, and what a refusal looks like.

use std::time::Duration;

use mockall::predicate::eq;
use serde_json::json;

use super::harness::*;
use crate::ports::{MockClientNotifier, MockConnectionRepository};
use crate::protocol::ErrorCode;
use crate::{
    HandleError, Handled, Page, RateLimit, RepositoryError, Settings, Timestamp, TokenDecision,
};

const LIMIT: RateLimit = RateLimit {
    per_second: 10,
    burst: 20,
};

fn limited() -> Settings {
    Settings {
        rate_limit: LIMIT,
        ..Settings::default()
    }
}

/// A store whose bucket for `a` answers `decision`, once, to exactly this limit and time.
fn bucket_answers(decision: TokenDecision) -> MockConnectionRepository {
    let mut repo = MockConnectionRepository::new();
    repo.expect_take_token()
        .with(eq(id("a")), eq(LIMIT), eq(Timestamp::from_millis(NOW)))
        .times(1)
        .returning(move |_, _, _| Ok(decision));
    repo
}

fn everyone_is_a_and_b(repo: &mut MockConnectionRepository) {
    repo.expect_all_connections().returning(|_, _| {
        Ok(Page {
            items: vec![id("a"), id("b")],
            next: None,
        })
    });
}

const SEND_MESSAGE: &[u8] = br#"{"action":"sendmessage","data":1,"requestId":"r1"}"#;

#[tokio::test]
async fn a_message_over_the_limit_gets_rate_limited_with_the_wait_and_reaches_nobody() {
    // No `all_connections` expectation: reading the audience would fail the test.
    let repo = bucket_answers(TokenDecision::Refused {
        retry_after: Duration::from_millis(150),
    });
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, limited());

    let handled = service
        .handle_message(&sender("a"), SEND_MESSAGE)
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::RateLimited));
    let error = &outbox.frames_to("a")[0];
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["requestId"], "r1");
    assert_eq!(error["retryAfterMs"], 150);
    assert!(outbox.frames_to("b").is_empty());
}

#[tokio::test]
async fn a_message_within_the_limit_spends_one_token_then_runs() {
    let mut repo = bucket_answers(TokenDecision::Taken);
    everyone_is_a_and_b(&mut repo);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, limited());

    service
        .handle_message(&sender("a"), SEND_MESSAGE)
        .await
        .unwrap();

    assert_eq!(outbox.recipients_of_type("message"), vec!["a", "b"]);
    assert_eq!(
        outbox.recipients_of_type("ack"),
        vec!["a"],
        "an ack, with no retryAfterMs anywhere"
    );
}

#[tokio::test]
async fn a_sender_the_store_does_not_know_is_let_through_to_the_actions_own_checks() {
    let mut repo = bucket_answers(TokenDecision::NotConnected);
    everyone_is_a_and_b(&mut repo);
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, limited());

    service
        .handle_message(&sender("a"), SEND_MESSAGE)
        .await
        .unwrap();

    assert_eq!(outbox.recipients_of_type("message"), vec!["a", "b"]);
}

#[tokio::test]
async fn ping_and_whoami_never_spend_a_token() {
    // No `take_token` expectation: a call would fail the test.
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(MockConnectionRepository::new(), notifier, limited());

    for body in [&br#"{"action":"ping"}"#[..], &br#"{"action":"whoami"}"#[..]] {
        service.handle_message(&sender("a"), body).await.unwrap();
    }

    let kinds: Vec<_> = outbox
        .frames_to("a")
        .iter()
        .map(|f| f["type"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("pong"), json!("identity")]);
}

#[tokio::test]
async fn with_the_limit_off_no_token_is_asked_for() {
    let mut repo = MockConnectionRepository::new();
    everyone_is_a_and_b(&mut repo);
    let (notifier, outbox) = accepting_notifier();
    let off = Settings {
        rate_limit: RateLimit {
            per_second: 0,
            burst: 20,
        },
        ..Settings::default()
    };
    let (service, _) = service(repo, notifier, off);

    service
        .handle_message(&sender("a"), SEND_MESSAGE)
        .await
        .unwrap();

    assert_eq!(outbox.recipients_of_type("message"), vec!["a", "b"]);
}

#[tokio::test]
async fn a_malformed_message_is_refused_before_any_token_is_spent() {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(MockConnectionRepository::new(), notifier, limited());

    let handled = service
        .handle_message(&sender("a"), b"{not json")
        .await
        .unwrap();

    assert_eq!(handled, Handled::Rejected(ErrorCode::BadJson));
    assert!(outbox.frames_to("a")[0].get("retryAfterMs").is_none());
}

#[tokio::test]
async fn a_store_failure_while_taking_a_token_is_a_service_error_and_sends_nothing() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_take_token()
        .returning(|_, _, _| Err(RepositoryError::Throttled("busy".into())));
    let (service, _) = service(repo, MockClientNotifier::new(), limited());

    let result = service.handle_message(&sender("a"), SEND_MESSAGE).await;

    assert!(matches!(result, Err(HandleError::Repository(_))));
}
