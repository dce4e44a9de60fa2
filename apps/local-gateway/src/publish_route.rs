//! `POST /{stage}/@publish`: a backend publishes without a WebSocket, locally. The body is the
//! backend queue's message (`{"room": "lobby", "data": ...}`, docs/deploying.md, "Publishing
//! from a backend"), put on the local backend queue as `wsctl publish --queue-url` puts it on SQS.
//! Answers 202 `{"id": "<message id>"}` (a control message: `{"queued": <it>}`), 400
//! `{"error": "..."}` naming what is wrong (a field only the service may set among them), or 413
//! for a job whose frame would be over the message limit: refused now rather than dead-lettered
//! later. Control messages (`disconnect`, `ban`, `unban`, `forget`) go on the same queue.
//!
//! Local-only, and kept from web pages (see `browser_safety`): a request with an `Origin` (every
//! browser sends one) gets 403, and one whose content type is not JSON gets 415 (a page can POST
//! `text/plain` cross-origin without asking first, but not `application/json`).

use std::sync::Arc;

use adapters::memory::MAX_JOB_BYTES;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::delivery::{DeliveryJob, MessageId, QueueError};
use domain::sessions::Control;
use serde_json::json;

use crate::gateway::Gateway;
use crate::request_body::{self, BodyError};

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refuse(status: StatusCode, error: impl std::fmt::Display) -> Response {
    answer(status, json!({ "error": error.to_string() }))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

pub async fn publish(
    State(gateway): State<Arc<Gateway>>,
    Path(stage): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if headers.contains_key(header::ORIGIN) {
        return refuse(
            StatusCode::FORBIDDEN,
            "@publish does not answer web pages (the request has an Origin)",
        );
    }
    if stage != gateway.api.stage {
        return refuse(StatusCode::NOT_FOUND, format!("no stage {stage:?} here"));
    }
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the job as Content-Type: application/json",
        );
    }
    let Some(queue) = &gateway.publish_queue else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "queued delivery is off (--workers 0): nothing would deliver this job",
        );
    };
    let body = match request_body::read(body, MAX_JOB_BYTES, gateway.limits.handshake_timeout).await
    {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the job exceeds the queue's limit of {MAX_JOB_BYTES} bytes"),
            );
        }
        Err(BodyError::TimedOut) => {
            let mut response = refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the job did not come within --handshake-timeout-secs",
            );
            // The rest of the body may still come: the connection cannot serve another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(BodyError::Broken) => {
            return refuse(StatusCode::BAD_REQUEST, "the request body broke off");
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the job is not UTF-8");
    };
    // A control message (disconnect, ban, unban, forget) goes on the same queue, checked first.
    if Control::is_control(text) {
        let control = match Control::from_json(text) {
            Ok(control) => control,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        };
        let Some(controls) = &gateway.control_queue else {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "queued delivery is off");
        };
        return match controls.send(&control).await {
            Ok(()) => answer(
                StatusCode::ACCEPTED,
                json!({ "queued": control.to_value() }),
            ),
            Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
        };
    }
    let job = match Ok::<_, String>(text)
        .and_then(|text| DeliveryJob::from_backend_json(text).map_err(|e| e.to_string()))
    {
        Ok(job) => job,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    if let Err(e) = job.check_frame(gateway.limits.max_message_bytes) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the message could never be delivered: {e}"),
        );
    }
    // The id is chosen here, so the answer names the id every frame of this message carries,
    // whichever queue the gateway runs on.
    let id = job.id.clone().unwrap_or_else(MessageId::random);
    let job = DeliveryJob {
        id: Some(id.clone()),
        ..job
    };
    match queue.enqueue(vec![job]).await {
        Ok(()) => answer(StatusCode::ACCEPTED, json!({ "id": id.as_str() })),
        Err(e @ QueueError::TooLarge { .. }) => refuse(StatusCode::PAYLOAD_TOO_LARGE, e),
        Err(e @ QueueError::Unavailable(_)) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
