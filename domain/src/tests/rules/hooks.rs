//! The fork's hooks: on_publish refuses or rewrites a client's message before anyone gets it,
//! on_join keeps a connection out of a room, on_connect refuses a connection or attaches metadata
//! that later hooks read.

use std::sync::Mutex;

use serde_json::value::RawValue;

use super::*;
use crate::hooks::{Admission, Hooks, JoinAttempt, Publication, PublishTarget, Rejection};

/// Refuses any message whose text says "spoiler", and shouts the rest.
struct Moderation;

#[async_trait]
impl Hooks for Moderation {
    async fn on_publish(&self, publication: &mut Publication<'_>) -> Result<(), Rejection> {
        let text = publication.data.get();
        if text.contains("spoiler") {
            return Err(Rejection::new("no spoilers in here"));
        }
        let data: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let shouted = match data {
            Value::String(s) => json!(s.to_uppercase()),
            other => other,
        };
        publication.data = RawValue::from_string(shouted.to_string()).expect("JSON");
        Ok(())
    }

    async fn on_join(&self, join: &JoinAttempt<'_>) -> Result<(), Rejection> {
        if join.room.as_str().starts_with("staff") {
            return Err(Rejection::new("staff rooms are for staff"));
        }
        Ok(())
    }
}

fn moderated(repo: MockConnectionRepository) -> (TestService, Outbox) {
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    (service.with_hooks(Arc::new(Moderation)), outbox)
}

#[tokio::test]
async fn a_message_the_publish_hook_refuses_reaches_nobody_and_the_sender_learns_why() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of().never();
    repo.expect_all_connections().never();
    repo.expect_get().never();
    let (service, outbox) = moderated(repo);

    for body in [
        r#"{"action":"publish","room":"r1","data":"a spoiler!","requestId":"q"}"#,
        r#"{"action":"sendmessage","data":"spoiler","requestId":"q"}"#,
        r#"{"action":"send","to":"b","data":"spoiler","requestId":"q"}"#,
    ] {
        assert_eq!(
            message(&service, "a", body).await,
            Handled::Rejected(ErrorCode::Rejected),
            "{body}"
        );
    }
    let frames = outbox.frames_to("a");
    assert_eq!(frames.len(), 3);
    for frame in frames {
        assert_eq!(frame["code"], "rejected");
        assert_eq!(frame["message"], "no spoilers in here");
    }
    assert!(outbox.frames_to("b").is_empty());
}

#[tokio::test]
async fn the_publish_hook_rewrites_what_every_recipient_gets() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("r1")]));
    repo.expect_members_of()
        .returning(|_, _, _| Ok(one_page(&["a", "b"])));
    let (service, outbox) = moderated(repo);

    message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":"hello"}"#,
    )
    .await;

    assert_eq!(outbox.first_of_type("b", "message")["data"], "HELLO");
    assert_eq!(outbox.first_of_type("a", "message")["data"], "HELLO");
}

#[tokio::test]
async fn the_join_hook_keeps_a_connection_out_after_the_room_policy() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_join().never();
    let (service, outbox) = moderated(repo);

    let handled = message(&service, "a", r#"{"action":"join","room":"staff-only"}"#).await;

    assert_eq!(handled, Handled::Rejected(ErrorCode::Rejected));
    assert_eq!(
        outbox.frames_to("a")[0]["message"],
        "staff rooms are for staff"
    );
}

/// Lets in only connections with a `name` query parameter, keeps the name as metadata, and signs
/// every message with it.
#[derive(Default)]
struct Named {
    seen: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl Hooks for Named {
    async fn on_connect(&self, connect: &ConnectRequest) -> Result<Admission, Rejection> {
        match connect.query.get("name") {
            Some(name) => Ok(Admission {
                metadata: Some(name.clone()),
            }),
            None => Err(Rejection::new("say your name")),
        }
    }

    async fn on_publish(&self, publication: &mut Publication<'_>) -> Result<(), Rejection> {
        let name = publication
            .sender_metadata()
            .await
            .map_err(|e| Rejection::new(e.to_string()))?;
        self.seen.lock().unwrap().push(name);
        assert_eq!(publication.target, PublishTarget::Everyone);
        Ok(())
    }
}

fn connect_request(query: &[(&str, &str)]) -> ConnectRequest {
    let mut request = ConnectRequest::new(id("a"), Timestamp::from_millis(NOW));
    request.query = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    request
}

#[tokio::test]
async fn the_connect_hook_refuses_before_anything_is_stored() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_save().never();
    let (notifier, _) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let service = service.with_hooks(Arc::new(Named::default()));

    let refused = service.connect(connect_request(&[])).await;

    assert_eq!(
        refused,
        Err(crate::ConnectError::Rejected("say your name".into()))
    );
}

#[tokio::test]
async fn metadata_the_connect_hook_attaches_is_stored_and_read_back_by_a_later_hook() {
    let stored = Arc::new(Mutex::new(None::<crate::Connection>));
    let mut repo = MockConnectionRepository::new();
    let saved = stored.clone();
    repo.expect_save().returning(move |c| {
        *saved.lock().unwrap() = Some(c.clone());
        Ok(())
    });
    let read = stored.clone();
    repo.expect_get()
        .returning(move |_, _| Ok(read.lock().unwrap().clone()));
    repo.expect_all_connections()
        .returning(|_, _| Ok(one_page(&["a"])));
    let hooks = Arc::new(Named::default());
    let (notifier, _) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let service = service.with_hooks(hooks.clone());

    service
        .connect(connect_request(&[("name", "Ada")]))
        .await
        .unwrap();
    message(&service, "a", r#"{"action":"sendmessage","data":1}"#).await;

    assert_eq!(
        stored.lock().unwrap().as_ref().unwrap().metadata.as_deref(),
        Some("Ada")
    );
    assert_eq!(*hooks.seen.lock().unwrap(), vec![Some("Ada".to_owned())]);
}

#[tokio::test]
async fn metadata_over_the_limit_is_a_service_error_not_a_silent_cut() {
    struct Verbose;
    #[async_trait]
    impl Hooks for Verbose {
        async fn on_connect(&self, _: &ConnectRequest) -> Result<Admission, Rejection> {
            Ok(Admission {
                metadata: Some("x".repeat(crate::hooks::MAX_METADATA_BYTES + 1)),
            })
        }
    }
    let mut repo = MockConnectionRepository::new();
    repo.expect_save().never();
    let (notifier, _) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let service = service.with_hooks(Arc::new(Verbose));

    let refused = service.connect(connect_request(&[])).await;

    assert!(
        matches!(
            refused,
            Err(crate::ConnectError::MetadataTooLong {
                len: 1025,
                max: 1024
            })
        ),
        "{refused:?}"
    );
}
