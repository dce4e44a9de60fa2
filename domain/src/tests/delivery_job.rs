//! The queue's JSON form of a delivery job: what a backend may write, and what it gets refused for.

use serde_json::value::RawValue;

use crate::delivery::{DeliveryJob, JobError, JobTarget, MessageId};
use crate::ports::PageToken;
use crate::testing::{id, room};

fn data(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

fn parse(json: &str) -> Result<DeliveryJob, JobError> {
    DeliveryJob::from_json(json)
}

#[test]
fn a_backend_publish_to_a_room_needs_only_the_room_and_the_data() {
    let job = parse(r#"{"room":"lobby","data":{"text":"hi"}}"#).unwrap();
    assert_eq!(job.target, JobTarget::Room(room("lobby")));
    assert_eq!(job.data.get(), r#"{"text":"hi"}"#);
    assert_eq!((job.id, job.from, job.cursor), (None, None, None));
}

#[test]
fn everyone_and_one_connection_are_targets_too() {
    let everyone = parse(r#"{"everyone":true,"data":1}"#).unwrap();
    assert_eq!(everyone.target, JobTarget::Everyone);
    let one = parse(r#"{"connection":"abc=","data":"x"}"#).unwrap();
    assert_eq!(one.target, JobTarget::Connection(id("abc=")));
}

#[test]
fn a_job_must_name_exactly_one_target() {
    assert_eq!(parse(r#"{"data":1}"#), Err(JobError::NoTarget));
    assert_eq!(
        parse(r#"{"everyone":false,"data":1}"#),
        Err(JobError::NoTarget)
    );
    assert_eq!(
        parse(r#"{"room":"a","everyone":true,"data":1}"#),
        Err(JobError::ManyTargets)
    );
    assert_eq!(
        parse(r#"{"room":"a","connection":"c","data":1}"#),
        Err(JobError::ManyTargets)
    );
}

#[test]
fn a_job_without_data_is_refused() {
    assert_eq!(parse(r#"{"room":"lobby"}"#), Err(JobError::NoData));
}

#[test]
fn a_bad_field_is_named_and_its_value_is_not_echoed() {
    let secret = "SECRET VALUE";
    let err = parse(&format!(r#"{{"room":"{secret}","data":1}}"#)).unwrap_err();
    assert!(
        matches!(err, JobError::Field { field: "room", .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(secret), "{err}");
    let err = parse(r#"{"room":"a","data":1,"id":"has space"}"#).unwrap_err();
    assert!(
        matches!(err, JobError::Field { field: "id", .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_json_is_reported_by_position_without_its_content() {
    let err = parse(r#"{"room": SECRET}"#).unwrap_err();
    assert!(
        matches!(
            err,
            JobError::NotJson {
                category: "syntax",
                line: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[test]
fn a_principal_without_a_sender_is_refused() {
    let err = parse(r#"{"room":"a","data":1,"principal":"alice"}"#).unwrap_err();
    assert!(
        matches!(
            err,
            JobError::Field {
                field: "principal",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn every_field_survives_a_round_trip() {
    let job = DeliveryJob {
        from: Some(id("sender=")),
        principal: Some(crate::connection::Principal::parse("alice").unwrap()),
        skip: Some(id("sender=")),
        cursor: Some(PageToken::new("opaque\"cursor")),
        sent_at: Some(1_700_000_000_000),
        ..DeliveryJob::new(
            MessageId::parse("m-1").unwrap(),
            JobTarget::Room(room("lobby")),
            data(r#"{"nested":[1,2,{"a":"\u00e9"}]}"#),
        )
    };
    assert_eq!(parse(&job.to_json()), Ok(job));
}

#[test]
fn a_backend_job_takes_the_queue_message_id_and_keeps_its_own_when_it_has_one() {
    let fallback = MessageId::parse("sqs-message-id").unwrap();
    let without = parse(r#"{"room":"a","data":1}"#).unwrap();
    assert_eq!(without.id_or(&fallback), fallback);
    let with = parse(r#"{"room":"a","data":1,"id":"mine"}"#).unwrap();
    assert_eq!(with.id_or(&fallback).as_str(), "mine");
}

#[test]
fn random_message_ids_are_valid_and_distinct() {
    let ids: std::collections::HashSet<_> = (0..1000).map(|_| MessageId::random()).collect();
    assert_eq!(ids.len(), 1000);
    for id in &ids {
        assert_eq!(MessageId::parse(id.as_str()).as_ref(), Ok(id));
    }
}

#[test]
fn a_hand_over_names_its_recipients_and_survives_a_round_trip() {
    let job = DeliveryJob::new(
        MessageId::parse("m-2").unwrap(),
        JobTarget::Everyone,
        data("1"),
    )
    .continued_at(PageToken::new("page-3"))
    .handed_over_to(vec![id("a="), id("b=")]);
    assert_eq!(job.cursor, None, "a hand-over reads nothing more");
    let json = job.to_json();
    assert!(json.contains(r#""recipients":["a=","b="]"#), "{json}");
    assert_eq!(parse(&json), Ok(job));
}

#[test]
fn recipients_are_refused_when_empty_malformed_or_for_one_connection() {
    for (json, field) in [
        (r#"{"room":"a","data":1,"recipients":[]}"#, "recipients"),
        (
            r#"{"room":"a","data":1,"recipients":["has space"]}"#,
            "recipients",
        ),
        (
            r#"{"connection":"c","data":1,"recipients":["d"]}"#,
            "recipients",
        ),
    ] {
        assert!(
            matches!(parse(json), Err(JobError::Field { field: f, .. }) if f == field),
            "{json}: {:?}",
            parse(json)
        );
    }
}
