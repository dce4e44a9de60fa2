//! The HTTP server, started and stopped. hyper's own HTTP/1 server rather than `axum::serve`,
//! for the one setting axum does not expose: a deadline on the request head, so a handshake
//! that never completes (slowloris) does not hold a file descriptor forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::delivery::LocalDelivery;
use crate::gateway::{Gateway, GatewayParts, connection_permits};
use crate::limits::CLOSE_HANDSHAKE_TIMEOUT;
use crate::{GatewayConfig, routes};

/// How long shutdown waits for every socket's close handshake and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

pub struct RunningGateway {
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    delivery: Option<LocalDelivery>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.gateway.api.addr
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/{}", self.gateway.api.addr, self.gateway.api.stage)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/", self.gateway.api.addr)
    }

    pub fn management_url(&self) -> String {
        format!(
            "http://{}/{}",
            self.gateway.api.addr, self.gateway.api.stage
        )
    }

    pub fn open_sockets(&self) -> usize {
        self.gateway.sockets().len()
    }

    /// `POST` a backend's job here (`{"room": "lobby", "data": ...}`); `None` without workers.
    pub fn publish_url(&self) -> Option<String> {
        self.delivery
            .as_ref()
            .map(|_| format!("{}/@publish", self.management_url()))
    }

    /// The delivery queue and its workers, when `--workers` is above 0.
    pub fn delivery(&self) -> Option<&LocalDelivery> {
        self.delivery.as_ref()
    }

    /// Refuses new WebSockets (503), closes every open one with 1001 "Going away", waits until
    /// each has finished its `$disconnect`, then stops the server. The HTTP side keeps serving
    /// meanwhile, so handlers still running can post to `@connections`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let every_slot =
            u32::try_from(connection_permits(&self.gateway.limits)).unwrap_or(u32::MAX);
        let grace = SHUTDOWN_GRACE + CLOSE_HANDSHAKE_TIMEOUT;
        let all_done = self.gateway.connection_slots.acquire_many(every_slot);
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!(
                open = self.gateway.sockets().len(),
                "shutdown: some $disconnect did not finish in time; their rows may remain"
            );
        }
        // After the sockets: a job still running has nobody left to post to.
        if let Some(delivery) = self.delivery {
            delivery.stop();
        }
        self.server.abort();
    }
}

pub async fn start(config: GatewayConfig) -> std::io::Result<RunningGateway> {
    let addr = config.listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let gateway = Arc::new(Gateway::new(GatewayParts {
        stage: config.stage,
        addr,
        limits: config.limits,
        handler: config.handler,
        authorizer: config.authorizer,
        sockets: config.sockets,
        browser: config.browser,
        publish_queue: config.delivery.as_ref().map(|d| d.transport.sender()),
        rooms: config.rooms,
        shutdown,
    }));
    let app = routes(gateway.clone());
    let server = tokio::spawn(serve(
        config.listener,
        app,
        gateway.limits.handshake_timeout,
    ));
    Ok(RunningGateway {
        gateway,
        stop,
        server,
        delivery: config.delivery,
    })
}

async fn serve(listener: TcpListener, app: Router, handshake_timeout: Duration) {
    // Dropped with this task, which ends every HTTP connection still open; upgraded sockets
    // live in their own tasks.
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let app = TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.call(request)
        });
        connections.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout);
            let served = http
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
