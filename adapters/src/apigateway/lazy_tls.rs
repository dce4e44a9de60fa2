//! The signed notifier's connector: plain TCP for `http://` endpoints (the local gateway, test
//! servers), rustls with the system's root certificates for `https://` ones, those roots read
//! once, by the first https connection or ahead of it on a thread of their own.
//!
//! Reading and parsing the roots lengthens a cold start (BENCHMARKS.md, "Cold start"), and the
//! SDK's own HTTPS client keeps its copy to itself (see `sdk_http.rs`). A Lambda whose
//! events post has them read on a thread of their own during its init, off the path to the first
//! event (`SignedNotifier::read_roots_in_background`); `$connect`, which never posts, and
//! plain-http endpoints never read them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Https = HttpsConnector<HttpConnector>;

/// An `https` connector built on first use, and plain `http` without it.
#[derive(Clone)]
pub(crate) struct LazyTlsConnector {
    http: HttpConnector,
    /// The outcome of the one attempt to load the roots: a failure is kept and reported by
    /// every https connection, as a missing root store would have failed them all anyway.
    https: Arc<OnceLock<Result<Https, Arc<io::Error>>>>,
}

impl LazyTlsConnector {
    /// `http` must have `enforce_http(false)`: https URIs go through it under TLS.
    pub(crate) fn new(http: HttpConnector) -> Self {
        Self {
            http,
            https: Arc::default(),
        }
    }

    /// Whether the one attempt to read the root certificates has ended, well or not (for tests).
    #[cfg(test)]
    pub(crate) fn roots_attempted(&self) -> bool {
        self.https.get().is_some()
    }

    /// Starts reading the roots now, on a thread of its own, so that the first https connection
    /// finds them ready, or waits for that thread instead of reading them a second time.
    pub(crate) fn read_roots_in_background(&self) -> Option<std::thread::JoinHandle<()>> {
        let connector = self.clone();
        std::thread::Builder::new()
            .name("notifier-roots".into())
            .spawn(move || {
                // A failure is kept in the cell and reported by the first https connection.
                let _ = connector.https();
            })
            .ok()
    }

    fn https(&self) -> Result<Https, BoxError> {
        let http = self.http.clone();
        let built = self.https.get_or_init(|| {
            Ok(hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(Arc::new)?
                .https_only()
                .enable_http1()
                .wrap_connector(http))
        });
        match built {
            Ok(https) => Ok(https.clone()),
            Err(e) => Err(format!("could not load the system's root certificates: {e}").into()),
        }
    }
}

impl Service<Uri> for LazyTlsConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            match self.https() {
                Ok(mut https) => Box::pin(async move { https.call(uri).await }),
                Err(e) => Box::pin(async move { Err(e) }),
            }
        } else {
            let mut http = self.http.clone();
            Box::pin(async move {
                let stream = http.call(uri).await?;
                Ok(MaybeHttpsStream::Http(stream))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> LazyTlsConnector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        LazyTlsConnector::new(http)
    }

    #[tokio::test]
    async fn an_http_connection_reads_no_root_certificates() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/local", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let mut connector = connector();

        let stream = connector.call(uri).await.unwrap();

        assert!(matches!(stream, MaybeHttpsStream::Http(_)));
        assert!(!connector.roots_attempted());
    }

    #[test]
    fn reading_them_in_the_background_leaves_them_ready_for_every_clone() {
        let connector = connector();
        let clone = connector.clone();

        let reading = connector.read_roots_in_background().expect("a thread");
        reading.join().expect("the thread ends");

        assert!(clone.roots_attempted());
    }

    #[tokio::test]
    async fn the_first_https_connection_reads_them_once_for_every_clone() {
        let connector = connector();
        let clone = connector.clone();

        // No server: the connection fails, after the roots are read.
        let mut first = connector.clone();
        let _ = first.call("https://127.0.0.1:9/".parse().unwrap()).await;

        assert!(connector.roots_attempted());
        assert!(clone.roots_attempted());
    }
}
