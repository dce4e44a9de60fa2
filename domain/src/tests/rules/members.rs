use super::*;

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

    let after_b = crate::protocol::cursor::encode(&room("r1"), "b");
    let request = json!({"action": "members", "room": "r1", "cursor": after_b, "requestId": "m"});

    message(&service, "a", &request.to_string()).await;

    let next = crate::protocol::cursor::encode(&room("r1"), "c");
    assert_eq!(
        outbox.frames_to("a"),
        vec![json!({
            "type": "members", "room": "r1", "count": 1, "cursor": next, "requestId": "m",
            "members": [{"connectionId": "c", "principal": null}],
        })]
    );
}

#[tokio::test]
async fn a_cursor_this_room_could_not_have_sent_is_an_invalid_field_and_reads_nothing() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of().never();
    repo.expect_member_list().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());
    let other_rooms = crate::protocol::cursor::encode(&room("r2"), "b");

    for cursor in ["garbage!", "b", other_rooms.as_str()] {
        let request = json!({"action": "members", "room": "r1", "cursor": cursor});
        let handled = message(&service, "a", &request.to_string()).await;
        assert_eq!(
            handled,
            Handled::Rejected(ErrorCode::InvalidField),
            "{cursor}"
        );
    }
    assert!(
        outbox
            .frames_to("a")
            .iter()
            .all(|f| f["code"] == "invalid_field"
                && f["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("cursor")),
        "{:?}",
        outbox.frames_to("a")
    );
}

#[tokio::test]
async fn the_member_list_is_refused_to_a_non_member() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of().returning(|_, _| Ok(vec![]));
    repo.expect_member_list().never();
    let (notifier, outbox) = accepting_notifier();
    let (service, _) = service(repo, notifier, Settings::default());

    let handled = message(&service, "a", r#"{"action":"members","room":"r1"}"#).await;

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
    let cursor = crate::protocol::cursor::encode(&room, &"z".repeat(128));
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
