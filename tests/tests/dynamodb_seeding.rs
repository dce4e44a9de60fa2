//! `DynamoConnectionRepository::save_many`, the batch seeding the fault-injection test relies on,
//! on the moto server `./scripts/test` starts.

use std::collections::BTreeSet;
use std::time::Duration;

use adapters::dynamodb::{
    DynamoConnectionRepository, DynamoSettings, Seed, create_table_if_missing,
};
use domain::{Clock, Connection, ConnectionId, ConnectionRepository, Principal, RoomName};
use tests::{dynamodb_client, unique_table};

#[tokio::test]
async fn connections_seeded_in_batches_read_back_list_and_belong_to_rooms_like_saved_and_joined_ones()
 {
    let client = dynamodb_client().await;
    let table = unique_table("seeding");
    create_table_if_missing(&client, &table).await.unwrap();
    let repo = DynamoConnectionRepository::new(
        client,
        DynamoSettings {
            page_size: 16,
            list_shards: 3,
            ..DynamoSettings::new(table)
        },
    );
    let now = adapters::clock::SystemClock.now();
    // 61: two full batches of 25 and a partial one.
    let connections: Vec<Connection> = (0..61)
        .map(|i| Connection {
            id: ConnectionId::parse(format!("seed{i:02}")).unwrap(),
            connected_at: now,
            expires_at: now.saturating_add(Duration::from_secs(7_200)),
            principal: (i % 2 == 0).then(|| Principal::parse(format!("user{i}")).unwrap()),
            source_ip: Some("192.0.2.7".into()),
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        })
        .collect();

    let lobby = RoomName::parse("lobby").unwrap();
    let seeds: Vec<Seed> = connections
        .iter()
        .map(|c| Seed {
            connection: c.clone(),
            rooms: if c.id.as_str() < "seed30" {
                vec![lobby.clone()]
            } else {
                vec![]
            },
        })
        .collect();

    repo.save_many(&seeds).await.unwrap();

    for connection in &connections {
        assert_eq!(
            repo.get(&connection.id, now).await.unwrap().as_ref(),
            Some(connection)
        );
    }
    let mut listed = BTreeSet::new();
    let mut token = None;
    for _ in 0..100 {
        let page = repo.all_connections(token, now).await.unwrap();
        listed.extend(page.items);
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    let expected: BTreeSet<ConnectionId> = connections.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        listed, expected,
        "every shard lists what was seeded into it"
    );
    let mut members = BTreeSet::new();
    let mut token = None;
    for _ in 0..100 {
        let page = repo.members_of(&lobby, token, now).await.unwrap();
        members.extend(page.items);
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    let expected_members: BTreeSet<ConnectionId> =
        connections[..30].iter().map(|c| c.id.clone()).collect();
    assert_eq!(members, expected_members);
    // Seeded rows behave like joined ones: the rooms are in the connection, and a removal takes
    // the memberships with it.
    assert_eq!(
        repo.rooms_of(&connections[0].id, now).await.unwrap(),
        vec![lobby.clone()]
    );
    let removed = repo.remove(&connections[0].id).await.unwrap();
    assert_eq!(removed.rooms, vec![lobby.clone()]);
    let first_page = repo.members_of(&lobby, None, now).await.unwrap();
    assert!(!first_page.items.contains(&connections[0].id));
    let other = RoomName::parse("after-seeding").unwrap();
    repo.join(&connections[40].id, &other, 50, now)
        .await
        .unwrap();
    assert_eq!(
        repo.rooms_of(&connections[40].id, now).await.unwrap(),
        vec![other]
    );
}
