//! The repository contract against the DynamoDB adapter, on the moto server `./scripts/test` starts.

use crate::contract;

use adapters::dynamodb::{
    DynamoConnectionRepository, DynamoRoomLog, DynamoSettings, create_table_if_missing,
};
use domain::ConnectionRepository;
use tests::{dynamodb_client, unique_table};

async fn fresh(page_size: usize) -> DynamoConnectionRepository {
    let client = dynamodb_client().await;
    let table = unique_table("contract");
    create_table_if_missing(&client, &table).await.unwrap();
    let settings = DynamoSettings {
        page_size: page_size as i32,
        ..DynamoSettings::new(table)
    };
    DynamoConnectionRepository::new(client, settings)
}

repository_contract!(fresh);

#[tokio::test]
async fn dynamodb_bans_hold_to_the_bans_contract() {
    contract::a_ban_holds_until_its_end_and_unban_and_forget_lift_it(|| async {
        let client = dynamodb_client().await;
        let table = unique_table("bans");
        create_table_if_missing(&client, &table).await.unwrap();
        adapters::dynamodb::DynamoBans::new(client, table)
    })
    .await;
}

/// Deletes the connection row alone, as a `remove` whose membership batch failed would leave it.
async fn orphan(repo: std::sync::Arc<DynamoConnectionRepository>, id: domain::ConnectionId) {
    repo.delete_connection_row_only(&id).await.unwrap();
}

pruning_contract!(fresh, orphan);

/// The connection store and the room log on one fresh table, as the Lambdas wire them.
async fn fresh_pair() -> (DynamoConnectionRepository, DynamoRoomLog) {
    let client = dynamodb_client().await;
    let table = unique_table("stream");
    create_table_if_missing(&client, &table).await.unwrap();
    let settings = DynamoSettings::new(table);
    (
        DynamoConnectionRepository::new(client.clone(), settings.clone()),
        DynamoRoomLog::new(client, settings),
    )
}

room_log_contract!(fresh_pair);

#[tokio::test]
async fn listing_reads_every_shard_when_connections_are_spread_over_several() {
    let client = dynamodb_client().await;
    let table = unique_table("shards");
    create_table_if_missing(&client, &table).await.unwrap();
    let repo = DynamoConnectionRepository::new(
        client,
        DynamoSettings {
            page_size: 7,
            list_shards: 4,
            ..DynamoSettings::new(table)
        },
    );
    for i in 0..40 {
        repo.save(&contract::live(&format!("s{i}"))).await.unwrap();
    }

    let mut seen = std::collections::BTreeSet::new();
    let mut token = None;
    for _ in 0..100 {
        let page = repo.all_connections(token, contract::NOW).await.unwrap();
        seen.extend(page.items);
        token = page.next;
        if token.is_none() {
            break;
        }
    }

    assert!(token.is_none(), "paging did not end");
    assert_eq!(seen.len(), 40);
}

#[tokio::test]
async fn a_retried_connect_keeps_the_rooms_already_joined() {
    let repo = fresh(100).await;
    repo.save(&contract::live("a")).await.unwrap();
    repo.join(&contract::id("a"), &contract::room("r"), 50, contract::NOW)
        .await
        .unwrap();

    repo.save(&contract::live("a")).await.unwrap();

    let removed = repo.remove(&contract::id("a")).await.unwrap();
    assert_eq!(removed.rooms, vec![contract::room("r")]);
}
