//! Reading a request's body: up to a limit, and within a deadline. The server cuts off a request
//! head that takes too long (slowloris), but a body is read by the handler that wants it: a
//! client that promises `Content-Length: 100000` and sends nothing would otherwise hold its
//! connection, and a task, forever.

use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::StreamExt;

/// Why a body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not all of it came within the deadline: answer 408 and close the connection.
    TimedOut,
    /// It is longer than the limit.
    TooLarge,
    /// The connection broke while it came.
    Broken,
}

/// The whole body, when it has at most `limit` bytes and all of them come within `within`.
pub(crate) async fn read(body: Body, limit: usize, within: Duration) -> Result<Bytes, BodyError> {
    let collect = async {
        let mut chunks = body.into_data_stream();
        let mut read = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if read.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            read.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(read))
    };
    tokio::time::timeout(within, collect)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_limit() {
        let body = read(Body::from("hello"), 5, Duration::from_secs(1)).await;

        assert_eq!(body, Ok(Bytes::from("hello")));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let body = read(Body::from("hello!"), 5, Duration::from_secs(1)).await;

        assert_eq!(body, Err(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let trickle = futures::stream::iter([Ok(Bytes::from("a"))]).chain(never);

        let body = read(Body::from_stream(trickle), 100, Duration::from_millis(50)).await;

        assert_eq!(body, Err(BodyError::TimedOut));
    }
}
