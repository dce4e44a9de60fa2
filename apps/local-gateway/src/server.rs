//! The HTTP server, started and stopped. hyper's own HTTP/1 server rather than `axum::serve`,
//! for the one setting axum does not expose: a deadline on the request head, so a handshake
//! that never completes (slowloris) does not hold a file descriptor forever. Plain HTTP
//! connections are capped (`--max-http-connections`): past the cap a new one is refused at once.
//! A WebSocket counts until it is upgraded; open WebSockets have their own cap
//! (`--max-connections`, in `handshake`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::{any, get, post};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::GatewayConfig;
use crate::delivery::LocalDelivery;
use crate::deployment::Deployed;
use crate::gateway::{Background, Gateway, RouterState, connection_permits};
use crate::lambda::Functions;
use crate::limits::{CLOSE_HANDSHAKE_TIMEOUT, Limits};
use crate::{browser_safety, handshake, inspector, management, metrics_page, publish_route};

/// How long shutdown waits for every socket's close handshake and `$disconnect`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

pub struct RunningGateway {
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    delivery: Option<LocalDelivery>,
    deployed: Option<Deployed>,
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

    /// The deployment's functions, under `--deployment`: what their instances did so far.
    pub fn functions(&self) -> Option<&Functions> {
        self.deployed.as_ref().map(|deployed| &deployed.functions)
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
        if let Some(deployed) = self.deployed {
            deployed.stop();
        }
        self.server.abort();
    }
}

pub async fn start(config: GatewayConfig) -> std::io::Result<RunningGateway> {
    let (stop, shutdown) = watch::channel(false);
    let (gateway, listeners, Background { delivery, deployed }) = Gateway::new(config, shutdown)?;
    let gateway = Arc::new(gateway);
    let app = routes(gateway.clone());
    let limits = gateway.limits;
    let server = tokio::spawn(async move {
        let own_posts = async {
            if let Some(listener) = listeners.notifier {
                serve(listener, app.clone(), limits).await;
            }
        };
        tokio::join!(serve(listeners.public, app.clone(), limits), own_posts);
    });
    Ok(RunningGateway {
        gateway,
        stop,
        server,
        delivery,
        deployed,
    })
}

fn routes(gateway: Arc<Gateway>) -> Router {
    metrics_page::install();
    Router::new()
        .route("/", get(handshake::root))
        // Before `/{stage}`: a static path wins, so a stage cannot be named `metrics`.
        .route("/metrics", get(metrics_page::render))
        // Under one prefix, so only the stage `inspector` is taken.
        .route("/inspector", get(inspector::page))
        .route("/inspector/events", get(inspector::stream::events))
        .route("/inspector/console", get(inspector::console))
        .route("/inspector/lifecycle", get(inspector::lifecycle))
        .route("/inspector/{asset}", get(inspector::asset))
        .route("/{stage}", get(handshake::upgrade))
        .route("/{stage}/@connections/{id}", any(management::connection))
        .route("/{stage}/@publish", post(publish_route::publish))
        .route(
            "/@connections/{id}",
            any(management::connection_without_stage),
        )
        .layer(axum::middleware::from_fn_with_state(
            gateway.api.addr.ip(),
            browser_safety::require_loopback_host,
        ))
        .with_state(RouterState(gateway))
}

async fn serve(listener: TcpListener, app: Router, limits: Limits) {
    // Dropped with this task, which ends every HTTP connection still open; upgraded sockets
    // live in their own tasks.
    let mut connections = JoinSet::new();
    let http_slots = Arc::new(Semaphore::new(
        limits.max_http_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let handshake_timeout = limits.handshake_timeout;
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
        let Ok(slot) = http_slots.clone().try_acquire_owned() else {
            refuse(tcp);
            continue;
        };
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
            // Served, or upgraded to a WebSocket that now runs on its own.
            drop(slot);
        });
    }
}

/// Past the cap: a 503 if the socket takes it at once, then the connection is closed.
fn refuse(tcp: TcpStream) {
    const BODY: &str = "Service Unavailable: --max-http-connections connections are open\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tcp.try_write(response.as_bytes());
    tracing::debug!("plain HTTP connection refused: --max-http-connections reached");
}
