//! The signed notifier's connections, opened ahead of its posts when told that a fan-out is
//! coming (`ClientNotifier::prepare`).
//!
//! hyper's pool opens a connection when a request finds none idle, so without this a fresh
//! instance's first fan-out opens every one of them inside its posts: at 256 in flight, 256 TCP
//! (in AWS, TLS) handshakes between the first post and the last one to start (BENCHMARKS.md, "A
//! cold pool"). The domain knows better moments: while it waits for a page of members, or for
//! the queue to take the rest of an audience. `AheadConnector::open_ahead` starts connections
//! then, as tasks of their own; the pool's next new connections are taken from them, in order,
//! and a post whose connection is still opening waits for it rather than opening another.
//!
//! Every connection is counted from the moment it is being opened until hyper drops it (in the
//! pool or in use), so a warm instance, whose pool already holds its connections, opens none
//! ahead, and two fan-outs at once do not open a window each.
//!
//! Limits: a connection opened ahead is handed to hyper as a new one, so should the server have
//! closed it meanwhile, the post on it fails (a transient error the domain retries) where a pooled
//! one would have been retried by hyper; hence the short [`AHEAD_FOR_AT_MOST`]. A taken
//! connection whose request hyper gives up on is dropped, not put back.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower_service::Service;

use super::lazy_tls::LazyTlsConnector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Most connections `open_ahead` has alive or opening: a Lambda has 1 024 file descriptors, and
/// no fan-out window goes past this (the default is 64).
const MOST_AHEAD: usize = 256;

/// A connection opened ahead and not taken by then is dropped: the posts it was opened for (which
/// follow one page read or one queue send) did not come, and the server may close it.
const AHEAD_FOR_AT_MOST: Duration = Duration::from_secs(10);

/// A connection being opened, or open, for a post to come.
struct Ahead {
    opened_at: Instant,
    authority: Option<http::uri::Authority>,
    connecting: JoinHandle<Result<Stream, BoxError>>,
    /// Set by the task when it could not open it: not worth waiting for, nor counting.
    failed: Arc<AtomicBool>,
}

impl Ahead {
    /// Whether it may still serve a post; aborted when not.
    fn usable(&self) -> bool {
        let usable =
            self.opened_at.elapsed() <= AHEAD_FOR_AT_MOST && !self.failed.load(Ordering::Relaxed);
        if !usable {
            self.connecting.abort();
        }
        usable
    }
}

#[derive(Default)]
struct Shared {
    ahead: Mutex<VecDeque<Ahead>>,
    /// Connections being opened by a request, or handed to the pool and not yet dropped.
    alive: AtomicUsize,
}

/// One connection counted in `alive` while it lives.
struct Alive(Arc<Shared>);

impl Alive {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.alive.fetch_add(1, Ordering::Relaxed);
        Self(shared.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    fn ahead(&self) -> std::sync::MutexGuard<'_, VecDeque<Ahead>> {
        // A panic while holding it leaves a plain queue behind, still usable.
        self.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest connection opened ahead for `uri`'s authority that is not too old.
    fn take(&self, uri: &Uri) -> Option<JoinHandle<Result<Stream, BoxError>>> {
        let mut ahead = self.ahead();
        while let Some(next) = ahead.pop_front() {
            if !next.usable() {
                continue;
            }
            if next.authority.as_ref() == uri.authority() {
                return Some(next.connecting);
            }
            // Another endpoint's: not this request's, and no other request will want it.
            next.connecting.abort();
        }
        None
    }
}

/// `LazyTlsConnector`, serving first the connections opened ahead.
#[derive(Clone)]
pub(crate) struct AheadConnector {
    inner: LazyTlsConnector,
    /// Bounds opening one connection ahead (connect and handshake).
    open_within: Duration,
    shared: Arc<Shared>,
}

impl AheadConnector {
    pub(crate) fn new(inner: LazyTlsConnector, open_within: Duration) -> Self {
        Self {
            inner,
            open_within,
            shared: Arc::default(),
        }
    }

    /// Starts opening connections to `uri`'s endpoint, so that with those alive and those
    /// already opening there are `count` (at most [`MOST_AHEAD`]). Returns how many it started;
    /// none outside a tokio runtime.
    pub(crate) fn open_ahead(&self, uri: &Uri, count: usize) -> usize {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return 0;
        };
        let mut ahead = self.shared.ahead();
        ahead.retain(Ahead::usable);
        let have = self.shared.alive.load(Ordering::Relaxed) + ahead.len();
        let opening = count.min(MOST_AHEAD).saturating_sub(have);
        for _ in 0..opening {
            let (mut inner, uri, within) = (self.inner.clone(), uri.clone(), self.open_within);
            let failed = Arc::new(AtomicBool::new(false));
            let failing = failed.clone();
            ahead.push_back(Ahead {
                opened_at: Instant::now(),
                authority: uri.authority().cloned(),
                connecting: runtime.spawn(async move {
                    let opened = match tokio::time::timeout(within, inner.call(uri)).await {
                        Ok(opened) => opened,
                        Err(_) => Err(format!("not open within {within:?}").into()),
                    };
                    match &opened {
                        Ok(_) => crate::metrics::record_post_connections_ahead(1),
                        Err(_) => failing.store(true, Ordering::Relaxed),
                    }
                    opened
                }),
                failed,
            });
        }
        opening
    }

    /// Connections handed out and still alive, and those opening or open ahead (for tests).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.shared.alive.load(Ordering::Relaxed),
            self.shared.ahead().len(),
        )
    }
}

impl Service<Uri> for AheadConnector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // Counted from now: a prepare while this opens must not open another for the same post.
        let alive = Alive::new(&self.shared);
        let taken = self.shared.take(&uri);
        let mut inner = self.inner.clone();
        Box::pin(async move {
            // One that failed to open is replaced by a new attempt, as if none had been ahead.
            if let Some(connecting) = taken
                && let Ok(Ok(stream)) = connecting.await
            {
                return Ok(Counted {
                    stream,
                    _alive: alive,
                });
            }
            let stream = inner.call(uri).await?;
            Ok(Counted {
                stream,
                _alive: alive,
            })
        })
    }
}

/// A connection, counted alive until hyper drops it.
pub(crate) struct Counted {
    stream: Stream,
    /// Held for its drop.
    _alive: Alive,
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicUsize;

    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::net::TcpListener;

    use super::*;

    /// A listener on a free port that accepts and holds every connection, counting them.
    async fn listener() -> (Uri, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let uri: Uri = format!("http://{}/", listener.local_addr().expect("its address"))
            .parse()
            .expect("a URI");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        (uri, accepted)
    }

    fn connector() -> AheadConnector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        AheadConnector::new(LazyTlsConnector::new(http), Duration::from_secs(2))
    }

    /// A port nothing listens on: bound, then freed.
    fn freed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|socket| socket.local_addr())
            .expect("a free port")
            .port()
    }

    fn uri_of(port: u16) -> Uri {
        format!("http://127.0.0.1:{port}/").parse().expect("a URI")
    }

    /// Waits (boundedly) until every connection opened ahead has opened or failed.
    async fn until_every_ahead_ended(connector: &AheadConnector) {
        for _ in 0..200 {
            if connector
                .shared
                .ahead()
                .iter()
                .all(|a| a.connecting.is_finished())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (boundedly) until `accepted` reaches `count`, failing the test if it does not.
    pub(in crate::apigateway) async fn accepted_reaches(accepted: &AtomicUsize, count: usize) {
        for _ in 0..200 {
            if accepted.load(Ordering::SeqCst) >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "{} connections accepted, {count} expected",
            accepted.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn connections_opened_ahead_are_the_next_ones_taken_and_no_more_are_opened() {
        let (uri, accepted) = listener().await;
        let mut connector = connector();

        assert_eq!(connector.open_ahead(&uri, 3), 3);
        accepted_reaches(&accepted, 3).await;
        let taken = [
            connector.call(uri.clone()).await.expect("one"),
            connector.call(uri.clone()).await.expect("two"),
            connector.call(uri.clone()).await.expect("three"),
        ];

        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(connector.counts(), (3, 0));
        drop(taken);
        assert_eq!(connector.counts(), (0, 0));
        assert_eq!(
            connector.open_ahead(&uri, 2),
            2,
            "a pool that shrank opens again"
        );
    }

    #[tokio::test]
    async fn a_connection_a_post_is_opening_counts_as_one_already() {
        let (uri, _) = listener().await;
        let mut connector = connector();

        let opening = connector.call(uri.clone());

        assert_eq!(connector.open_ahead(&uri, 1), 0);
        drop(opening);
        assert_eq!(connector.open_ahead(&uri, 1), 1);
    }

    #[tokio::test]
    async fn connections_that_failed_to_open_ahead_count_for_nothing() {
        let closed = uri_of(freed_port());
        let connector = connector();
        assert_eq!(connector.open_ahead(&closed, 2), 2);
        until_every_ahead_ended(&connector).await;

        assert_eq!(connector.open_ahead(&closed, 2), 2, "tried again");
    }

    #[tokio::test]
    async fn connections_alive_or_opening_count_towards_what_is_asked() {
        let (uri, accepted) = listener().await;
        let mut connector = connector();
        let _in_the_pool = connector.call(uri.clone()).await.expect("one");

        assert_eq!(connector.open_ahead(&uri, 3), 2);
        assert_eq!(connector.open_ahead(&uri, 3), 0);
        assert_eq!(connector.open_ahead(&uri, 1), 0);
        accepted_reaches(&accepted, 3).await;
        assert_eq!(connector.counts(), (1, 2));
    }

    #[tokio::test]
    async fn a_connection_that_failed_to_open_ahead_is_replaced_by_a_new_attempt() {
        let port = freed_port();
        let uri = uri_of(port);
        let mut connector = connector();
        assert_eq!(connector.open_ahead(&uri, 1), 1);
        until_every_ahead_ended(&connector).await;
        // Refused while nothing listened; now something does.
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the port again");

        let stream = connector.call(uri).await.expect("a new connection");
        let (_accepted, _) = listener.accept().await.expect("the new attempt");

        assert!(matches!(stream.stream, MaybeHttpsStream::Http(_)));
        assert_eq!(connector.counts(), (1, 0));
    }

    #[test]
    fn outside_a_runtime_nothing_is_opened() {
        let uri: Uri = "http://127.0.0.1:9/".parse().expect("a URI");

        assert_eq!(connector().open_ahead(&uri, 8), 0);
    }
}
