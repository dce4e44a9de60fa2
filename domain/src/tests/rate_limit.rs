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

const PER_PRINCIPAL: RateLimit = RateLimit {
    per_second: 1,
    burst: 3,
};

#[tokio::test]
async fn over_the_principals_limit_a_message_is_rate_limited_whatever_its_connections_bucket_holds()
{
    let mut repo = bucket_answers(TokenDecision::Taken);
    repo.expect_take_principal_token()
        .withf(|p, limit, _| p.as_str() == "user-a" && *limit == PER_PRINCIPAL)
        .times(1)
        .returning(|_, _, _| {
            Ok(TokenDecision::Refused {
                retry_after: Duration::from_millis(700),
            })
        });
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        principal_rate_limit: PER_PRINCIPAL,
        ..limited()
    };
    let (service, _) = service(repo, notifier, settings);

    let handled = message(&service, "a", std::str::from_utf8(SEND_MESSAGE).unwrap()).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::RateLimited));
    let error = outbox.first_of_type("a", "error");
    assert_eq!(error["retryAfterMs"], 700);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("across your connections"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_without_a_principal_spends_no_principal_token() {
    // No `take_principal_token` expectation: asking for one would fail the test.
    let mut repo = bucket_answers(TokenDecision::Taken);
    everyone_is_a_and_b(&mut repo);
    let (notifier, _outbox) = accepting_notifier();
    let settings = Settings {
        principal_rate_limit: PER_PRINCIPAL,
        ..limited()
    };
    let (service, _) = service(repo, notifier, settings);
    let anonymous = crate::Sender::new(id("a"), None);

    let handled = service
        .handle_message(&anonymous, SEND_MESSAGE)
        .await
        .unwrap();

    assert!(matches!(handled, Handled::Done { .. }), "{handled:?}");
}

const UNMETERED: RateLimit = RateLimit {
    per_second: 1,
    burst: 2,
};

#[tokio::test]
async fn a_ping_flood_is_answered_up_to_the_unmetered_burst_then_refused_once_then_dropped() {
    // No repository expectation: pings and malformed frames touch no storage.
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        unmetered_rate_limit: UNMETERED,
        ..Settings::default()
    };
    let (service, _) = service(MockConnectionRepository::new(), notifier, settings);

    let mut handled = Vec::new();
    for body in [
        r#"{"action":"ping"}"#,
        r#"{"action":"whoami"}"#,
        r#"{"action":"ping"}"#,
        r#"{oops"#,
        r#"{"action":"ping"}"#,
    ] {
        handled.push(message(&service, "a", body).await);
    }

    let types: Vec<String> = outbox
        .frames_to("a")
        .iter()
        .map(|f| f["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["pong", "identity", "error"],
        "two answers, one refusal, then silence"
    );
    assert_eq!(outbox.first_of_type("a", "error")["code"], "rate_limited");
    assert_eq!(outbox.first_of_type("a", "error")["retryAfterMs"], 1_000);
    assert!(
        handled[2..]
            .iter()
            .all(|h| *h == Handled::Rejected(ErrorCode::RateLimited)),
        "{handled:?}"
    );
}

#[tokio::test]
async fn the_unmetered_limit_is_per_connection() {
    let (notifier, outbox) = accepting_notifier();
    let settings = Settings {
        unmetered_rate_limit: UNMETERED,
        ..Settings::default()
    };
    let (service, _) = service(MockConnectionRepository::new(), notifier, settings);

    for from in ["a", "a", "a", "b", "b"] {
        message(&service, from, r#"{"action":"ping"}"#).await;
    }

    assert_eq!(outbox.frames_to("b").len(), 2);
    assert!(outbox.frames_to("b").iter().all(|f| f["type"] == "pong"));
}
