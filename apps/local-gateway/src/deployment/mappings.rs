//! The event source mappings, as Lambda's SQS pollers run them: each mapping's pollers (its
//! maximum concurrency) receive up to its batch size, invoke the function with the SQS event,
//! delete the records the answer does not name in `batchItemFailures`, and, unlike Lambda, make
//! the failed ones visible again at once (`ChangeMessageVisibility` 0) rather than after the
//! queue's visibility timeout (360 s in the template), so a poison job reaches the dead-letter
//! queue after `maxReceiveCount` receives within seconds. The queue's own redrive policy moves
//! it. The pollers sign their calls with the function's own key: Lambda's pollers act with the
//! function's execution role.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use super::file::{Deployment, MappingFile};
use crate::lambda::Functions;

/// Pollers of a mapping without a maximum concurrency (Lambda starts with five).
pub const DEFAULT_CONCURRENCY: usize = 5;
/// A receive's long poll.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// The pause after a failed receive, so a queue that is gone is not hammered.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The running pollers of every mapping; dropping or stopping them ends them.
pub struct Mappings {
    pollers: JoinSet<()>,
}

impl Mappings {
    pub async fn start(deployment: &Deployment, functions: Functions) -> Self {
        let mut pollers = JoinSet::new();
        for mapping in &deployment.event_source_mappings {
            let client = client(deployment, mapping).await;
            let source = Arc::new(Source {
                arn: queue_arn(deployment, &mapping.queue_url),
                region: deployment.region.clone(),
                mapping: mapping.clone(),
            });
            for _ in 0..mapping
                .maximum_concurrency
                .unwrap_or(DEFAULT_CONCURRENCY)
                .max(1)
            {
                pollers.spawn(poll(client.clone(), source.clone(), functions.clone()));
            }
        }
        Self { pollers }
    }

    pub fn stop(mut self) {
        self.pollers.abort_all();
    }
}

/// One mapping, as its pollers see it.
struct Source {
    mapping: MappingFile,
    arn: String,
    region: String,
}

async fn client(deployment: &Deployment, mapping: &MappingFile) -> Client {
    let credentials = aws_sdk_sqs::config::Credentials::new(
        &mapping.access_key_id,
        &mapping.secret_access_key,
        None,
        None,
        "event-source-mapping",
    );
    let config = adapters::sdk_http::sdk_loader()
        .region(aws_config::Region::new(deployment.region.clone()))
        .credentials_provider(credentials)
        .load()
        .await;
    adapters::sqs::sqs_client(&config, Some(&mapping.sqs_endpoint))
}

/// `arn:aws:sqs:{region}:{account}:{name}` of a queue URL (`.../{account}/{name}`).
fn queue_arn(deployment: &Deployment, url: &str) -> String {
    let mut path = url.trim_end_matches('/').rsplit('/');
    let name = path.next().unwrap_or_default();
    let account = path
        .next()
        .filter(|account| account.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or(&deployment.account_id);
    format!("arn:aws:sqs:{}:{account}:{name}", deployment.region)
}

async fn poll(client: Client, source: Arc<Source>, functions: Functions) {
    let mapping = &source.mapping;
    loop {
        let received = client
            .receive_message()
            .queue_url(&mapping.queue_url)
            .max_number_of_messages(i32::try_from(mapping.batch_size).unwrap_or(10))
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = mapping.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "event source mapping: receive failed");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let event =
            json!({"Records": messages.iter().map(|m| record(&source, m)).collect::<Vec<_>>()});
        let failed = match functions.invoke(&mapping.function, &event).await {
            Ok(answer) if mapping.report_batch_item_failures => failed_items(&answer, &messages),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(function = mapping.function, error = %e, "event source mapping: the batch failed");
                messages.iter().collect()
            }
        };
        settle(&client, &mapping.queue_url, &messages, &failed).await;
    }
}

/// A record of the SQS event, as Lambda builds it.
fn record(source: &Source, message: &Message) -> Value {
    let attributes: Map<String, Value> = message
        .attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
        .collect();
    let message_attributes: Map<String, Value> = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| {
            (
                name.clone(),
                json!({
                    "stringValue": value.string_value,
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.data_type,
                }),
            )
        })
        .collect();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": source.arn,
        "awsRegion": source.region,
    })
}

/// The records a partial batch response names, as Lambda reads it: none when the answer names
/// none (or is null), all when it names one that is not in the batch or is not a response.
fn failed_items<'a>(answer: &Value, messages: &'a [Message]) -> Vec<&'a Message> {
    let failures = match answer {
        Value::Null => return Vec::new(),
        Value::Object(answer) => match answer.get("batchItemFailures") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(failures)) => failures,
            Some(_) => return messages.iter().collect(),
        },
        _ => return messages.iter().collect(),
    };
    let mut failed = Vec::new();
    for failure in failures {
        let id = failure["itemIdentifier"].as_str().unwrap_or_default();
        match messages
            .iter()
            .find(|m| m.message_id.as_deref() == Some(id))
        {
            Some(message) => failed.push(message),
            None => {
                tracing::warn!(
                    itemIdentifier = id,
                    "a batch item failure names no record of the batch: the whole batch failed"
                );
                return messages.iter().collect();
            }
        }
    }
    failed
}

/// Deletes what succeeded; makes what failed visible again at once.
async fn settle(client: &Client, queue_url: &str, messages: &[Message], failed: &[&Message]) {
    let handle = |m: &Message| m.receipt_handle.clone().unwrap_or_default();
    let is_failed = |m: &Message| failed.iter().any(|f| f.message_id == m.message_id);
    let (mut deletes, mut releases) = (Vec::new(), Vec::new());
    for (i, message) in messages.iter().enumerate() {
        let id = i.to_string();
        if is_failed(message) {
            releases.push(
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(handle(message))
                    .visibility_timeout(0)
                    .build(),
            );
        } else {
            deletes.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(handle(message))
                    .build(),
            );
        }
    }
    if !deletes.is_empty() {
        let entries = deletes.into_iter().collect::<Result<Vec<_>, _>>();
        if let Ok(entries) = entries {
            let deleted = client
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(e) = deleted {
                tracing::warn!(queue = queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "event source mapping: delete failed; the messages come back");
            }
        }
    }
    if !releases.is_empty() {
        let entries = releases.into_iter().collect::<Result<Vec<_>, _>>();
        if let Ok(entries) = entries {
            let released = client
                .change_message_visibility_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(e) = released {
                tracing::warn!(queue = queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "event source mapping: could not make failed messages visible; they come back after the visibility timeout");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[&str]) -> Vec<Message> {
        ids.iter()
            .map(|id| {
                Message::builder()
                    .message_id(*id)
                    .receipt_handle(format!("h-{id}"))
                    .build()
            })
            .collect()
    }

    fn ids(failed: Vec<&Message>) -> Vec<&str> {
        failed
            .iter()
            .filter_map(|m| m.message_id.as_deref())
            .collect()
    }

    #[test]
    fn a_partial_batch_response_fails_the_records_it_names() {
        let messages = batch(&["a", "b", "c"]);
        let answer = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(ids(failed_items(&answer, &messages)), ["b"]);
    }

    #[test]
    fn an_empty_or_null_response_succeeds_whole() {
        let messages = batch(&["a", "b"]);
        for answer in [
            Value::Null,
            json!({}),
            json!({"batchItemFailures": []}),
            json!({"batchItemFailures": null}),
        ] {
            assert!(failed_items(&answer, &messages).is_empty(), "{answer}");
        }
    }

    #[test]
    fn a_response_naming_an_unknown_record_or_of_the_wrong_shape_fails_whole() {
        let messages = batch(&["a", "b"]);
        for answer in [
            json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": "b"}),
            json!("ok"),
        ] {
            assert_eq!(
                ids(failed_items(&answer, &messages)),
                ["a", "b"],
                "{answer}"
            );
        }
    }
}
