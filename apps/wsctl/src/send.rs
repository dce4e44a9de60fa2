//! Sending the job: to SQS through the adapter the service uses, or to the local gateway.

use adapters::sqs::SqsDeliveryQueue;
use aws_config::Region;
use domain::delivery::{DeliveryJob, DeliveryQueue, MessageId};
use reqwest::StatusCode;

use crate::job::{chosen_id, job};
use crate::{Aws, Publish};

/// Sends `publish` where it says; the message id on success.
pub async fn publish(publish: Publish) -> Result<String, String> {
    let id = chosen_id(&publish)?;
    match (&publish.via.queue_url, &publish.via.local) {
        (Some(queue_url), _) => {
            // A random id when none was chosen, so it can be printed: the queue's own message
            // id is known only to the worker.
            let id = id.unwrap_or_else(MessageId::random);
            let job = job(&publish, Some(id.clone()))?;
            to_queue(queue_url, &publish.aws, job).await?;
            Ok(id.to_string())
        }
        (None, Some(base)) => to_local_gateway(base, &job(&publish, id)?).await,
        (None, None) => Err("give --queue-url or --local".into()),
    }
}

/// Sends a control message where `via` says.
pub async fn control(
    control: &domain::sessions::Control,
    via: &crate::Via,
    aws: &Aws,
) -> Result<(), String> {
    match (&via.queue_url, &via.local) {
        (Some(queue_url), _) => {
            let mut loader = adapters::sdk_http::sdk_loader();
            if let Some(region) = &aws.region {
                loader = loader.region(Region::new(region.clone()));
            }
            let sdk = loader.load().await;
            SqsDeliveryQueue::from_sdk(&sdk, queue_url, aws.endpoint_url.as_deref())
                .send_control(control)
                .await
                .map_err(|e| e.to_string())
        }
        (None, Some(base)) => {
            let url = format!("{}/@publish", base.trim_end_matches('/'));
            let response = reqwest::Client::new()
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(control.to_json())
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = response.status();
            if status != StatusCode::ACCEPTED {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("POST {url} answered {status}: {body}"));
            }
            Ok(())
        }
        (None, None) => Err("give --queue-url or --local".into()),
    }
}

async fn to_queue(queue_url: &str, aws: &Aws, job: DeliveryJob) -> Result<(), String> {
    let mut loader = adapters::sdk_http::sdk_loader();
    if let Some(region) = &aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = loader.load().await;
    let queue = SqsDeliveryQueue::from_sdk(&sdk, queue_url, aws.endpoint_url.as_deref());
    queue.enqueue(vec![job]).await.map_err(|e| e.to_string())
}

async fn to_local_gateway(base: &str, job: &DeliveryJob) -> Result<String, String> {
    let url = format!("{}/@publish", base.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(job.to_json())
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status != StatusCode::ACCEPTED {
        return Err(format!("POST {url} answered {status}: {body}"));
    }
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("POST {url}: not JSON ({e}): {body}"))?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("POST {url}: no \"id\" in the answer: {body}"))
}
