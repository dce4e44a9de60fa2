//! The requests `DynamoConnectionRepository` sends, seen by a fake DynamoDB endpoint: what moto
//! cannot show, such as read consistency (which it ignores) and unprocessed batch items (which it
//! never leaves).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, Seed};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use domain::{
    Connection, ConnectionId, ConnectionRepository, RepositoryError, RoomName, Timestamp,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Every request as (the operation from `x-amz-target`, the JSON body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone, Default)]
struct Script {
    seen: Seen,
    /// How many `BatchWriteItem` calls still answer with every item unprocessed.
    unprocessed_answers: Arc<AtomicUsize>,
}

/// Answers reads with an empty, final page, and batch writes as the script says.
async fn fake_dynamodb(State(script): State<Script>, headers: HeaderMap, body: String) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("DynamoDB_20120810.")
        .to_string();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    script
        .seen
        .lock()
        .unwrap()
        .push((operation.clone(), body.clone()));
    let answer = match operation.as_str() {
        "BatchWriteItem" => {
            let unprocessed = script
                .unprocessed_answers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let left = if unprocessed {
                body["RequestItems"].clone()
            } else {
                json!({})
            };
            json!({ "UnprocessedItems": left })
        }
        _ => json!({"Count": 0, "ScannedCount": 0, "Items": []}),
    };
    (
        [("content-type", "application/x-amz-json-1.0")],
        answer.to_string(),
    )
        .into_response()
}

struct FakeDynamo {
    repo: DynamoConnectionRepository,
    script: Script,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDynamo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDynamo {
    fn calls(&self, operation: &str) -> Vec<Value> {
        let seen = self.script.seen.lock().unwrap();
        seen.iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

async fn fake() -> FakeDynamo {
    let script = Script::default();
    let app = Router::new()
        .fallback(fake_dynamodb)
        .with_state(script.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(url)
        .build();
    let repo = DynamoConnectionRepository::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        DynamoSettings::new("connections"),
    );
    FakeDynamo { repo, script, task }
}

fn the_only_query(dynamo: &FakeDynamo) -> Value {
    let queries = dynamo.calls("Query");
    assert_eq!(queries.len(), 1, "{queries:?}");
    queries[0].clone()
}

fn seeds(count: usize) -> Vec<Seed> {
    (0..count)
        .map(|i| {
            Seed::from(Connection {
                id: ConnectionId::parse(format!("seed{i}")).unwrap(),
                connected_at: Timestamp::from_millis(1),
                expires_at: Timestamp::from_millis(7_200_001),
                principal: None,
                source_ip: None,
                user_agent: None,
                metadata: None,
                token_expires_at: None,
                reauth_grants: None,
            })
        })
        .collect()
}

/// The items of one `BatchWriteItem` call to the `connections` table.
fn batch_items(call: &Value) -> &Vec<Value> {
    call["RequestItems"]["connections"].as_array().unwrap()
}

#[tokio::test]
async fn unprocessed_batch_items_are_sent_again_until_dynamodb_takes_them() {
    let dynamo = fake().await;
    dynamo.script.unprocessed_answers.store(2, Ordering::SeqCst);

    dynamo.repo.save_many(&seeds(30)).await.unwrap();

    let calls = dynamo.calls("BatchWriteItem");
    let sizes: Vec<usize> = calls.iter().map(|c| batch_items(c).len()).collect();
    assert_eq!(
        sizes,
        [25, 25, 25, 5],
        "the first batch twice more, then the rest"
    );
    assert_eq!(batch_items(&calls[1]), batch_items(&calls[0]));
    assert_eq!(batch_items(&calls[2]), batch_items(&calls[0]));
}

#[tokio::test]
async fn items_dynamodb_never_takes_are_an_error_after_a_bounded_number_of_rounds() {
    let dynamo = fake().await;
    dynamo
        .script
        .unprocessed_answers
        .store(usize::MAX, Ordering::SeqCst);

    let result = dynamo.repo.save_many(&seeds(3)).await;

    assert!(
        matches!(&result, Err(RepositoryError::Throttled(why)) if why.contains("after 8 rounds")),
        "{result:?}"
    );
    assert_eq!(dynamo.calls("BatchWriteItem").len(), 8);
}

#[tokio::test]
async fn room_members_are_read_with_a_consistent_query_so_a_fresh_join_is_not_missed() {
    let dynamo = fake().await;
    let room = RoomName::parse("lobby").unwrap();

    let page = dynamo
        .repo
        .members_of(&room, None, Timestamp::from_millis(1))
        .await
        .unwrap();

    assert!(page.items.is_empty() && page.next.is_none());
    let query = the_only_query(&dynamo);
    assert_eq!(query["IndexName"], Value::Null, "the base table: {query}");
    assert_eq!(query["ConsistentRead"], Value::Bool(true), "{query}");
}

#[tokio::test]
async fn the_listing_index_is_read_without_consistent_read_which_a_gsi_refuses() {
    let dynamo = fake().await;

    dynamo
        .repo
        .all_connections(None, Timestamp::from_millis(1))
        .await
        .unwrap();

    let query = the_only_query(&dynamo);
    assert_eq!(query["IndexName"], "connections", "{query}");
    assert_ne!(query["ConsistentRead"], Value::Bool(true), "{query}");
}
