use super::*;

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

    message(&service, "a", r#"{"action":"join","room":"r1"}"#).await;

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

    message(&service, "a", r#"{"action":"join","room":"r1"}"#).await;

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

    message(&service, "a", r#"{"action":"join","room":"r1"}"#).await;

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

    message(&service, "a", r#"{"action":"leave","room":"r1"}"#).await;

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

    message(
        &service,
        "a",
        r#"{"action":"publish","room":"r1","data":1}"#,
    )
    .await;

    let left: Vec<String> = presence_frames(&outbox)
        .into_iter()
        .filter(|(_, f)| f["event"] == "left" && f["connectionId"] == "gone")
        .map(|(to, _)| to)
        .collect();
    assert_eq!(left, vec!["a", "b"]);
}
