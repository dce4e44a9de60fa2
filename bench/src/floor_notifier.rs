//! The floor the notifiers are measured against (BENCHMARKS.md, "CPU per post"): hyper's bare
//! HTTP/1 connection API (no pool of hyper-util's, no timeouts, no error mapping) and one
//! `aws-sigv4` signature per request, with fixed credentials. Not a notifier anyone should deploy:
//! the `cpu-post` row that shows how far the real clients are from the cost of HTTP and signing
//! alone, on the same machine.

use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;
use domain::{ClientNotifier, ConnectionId, NotifyError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

pub struct FloorNotifier {
    /// `http://127.0.0.1:{port}/{stage}` of the local stub.
    endpoint: String,
    authority: String,
    identity: Identity,
    /// Connections not in use: one per post in flight, opened when none is idle.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl FloorNotifier {
    pub fn new(endpoint: &str) -> FloorNotifier {
        let authority = crate::management_stub::authority(endpoint).to_string();
        FloorNotifier {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            authority,
            identity: Credentials::new("AKIDEXAMPLE", "secret", None, None, "bench").into(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        if let Some(sender) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(sender);
        }
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn post(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), String> {
        let mut sender = self.connection().await?;
        // A connection whose previous exchange is not wound up yet refuses a new request.
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request =
            http::Request::post(format!("{}/@connections/{}", self.endpoint, to.as_str()))
                .header(http::header::HOST, &self.authority)
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .header(http::header::CONTENT_LENGTH, frame.len())
                .body(Bytes::copy_from_slice(frame))
                .map_err(|e| e.to_string())?;
        adapters::apigateway::sigv4::sign_with_aws_sigv4(
            &mut request,
            &self.identity,
            "us-east-1",
            SystemTime::now(),
        )?;
        let response = sender
            .send_request(request.map(Full::new))
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

#[async_trait]
impl ClientNotifier for FloorNotifier {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        self.post(to, frame).await.map_err(NotifyError::Transient)
    }

    async fn disconnect(&self, _: &ConnectionId) -> Result<(), NotifyError> {
        Err(NotifyError::Transient(
            "the floor client only posts".to_string(),
        ))
    }
}
