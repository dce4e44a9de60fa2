//! Credentials from aws-config's provider chain, fetched once and refreshed shortly before they
//! expire: the SDK's identity cache does this for SDK clients, the signed notifier needs its own.

use std::sync::RwLock;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_runtime_api::client::identity::Identity;

/// Refresh this long before expiry, as the SDK's lazy cache does: a post signed with credentials
/// that expire in flight is refused with 403.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The provider chain has its own timeouts; this bounds a misbehaving custom provider.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct CachedCredentials {
    provider: SharedCredentialsProvider,
    time: SharedTimeSource,
    /// A std lock: held for a clone only, never across an await.
    current: RwLock<Option<Identity>>,
    /// One refresh at a time: a fan-out of thousands must not call the provider thousands of times.
    refreshing: tokio::sync::Mutex<()>,
}

impl CachedCredentials {
    pub(crate) fn new(provider: SharedCredentialsProvider, time: SharedTimeSource) -> Self {
        Self {
            provider,
            time,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Cached credentials while they have more than `REFRESH_BEFORE_EXPIRY` left, else new ones.
    pub(crate) async fn get(&self) -> Result<Identity, CredentialsError> {
        if let Some(identity) = self.fresh() {
            return Ok(identity);
        }
        let _refreshing = self.refreshing.lock().await;
        // Another task may have refreshed while this one waited for the lock.
        if let Some(identity) = self.fresh() {
            return Ok(identity);
        }
        let credentials = tokio::time::timeout(LOAD_TIMEOUT, self.provider.provide_credentials())
            .await
            .map_err(|_| CredentialsError::provider_timed_out(LOAD_TIMEOUT))??;
        let identity = Identity::from(credentials);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(identity.clone());
        Ok(identity)
    }

    fn fresh(&self) -> Option<Identity> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let identity = current.as_ref()?;
        let still_good = match identity.expiration() {
            None => true,
            Some(expiry) => expiry > self.time.now() + REFRESH_BEFORE_EXPIRY,
        };
        still_good.then(|| identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::future;
    use aws_smithy_async::time::StaticTimeSource;

    use super::*;

    /// Hands out credentials that expire `lifetime` after `now`, and counts the calls.
    #[derive(Debug)]
    struct CountingProvider {
        calls: Arc<AtomicU32>,
        now: SystemTime,
        lifetime: Duration,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{call}"),
                "secret",
                None,
                Some(self.now + self.lifetime),
                "counting",
            )))
        }
    }

    fn cache(lifetime: Duration) -> (CachedCredentials, Arc<AtomicU32>) {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let calls = Arc::new(AtomicU32::new(0));
        let provider = CountingProvider {
            calls: calls.clone(),
            now,
            lifetime,
        };
        let cache = CachedCredentials::new(
            SharedCredentialsProvider::new(provider),
            SharedTimeSource::new(StaticTimeSource::new(now)),
        );
        (cache, calls)
    }

    #[tokio::test]
    async fn credentials_valid_for_an_hour_are_fetched_once() {
        let (cache, calls) = cache(Duration::from_secs(3600));

        for _ in 0..3 {
            cache.get().await.unwrap();
        }

        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_about_to_expire_are_fetched_again() {
        let (cache, calls) = cache(Duration::from_secs(60));

        cache.get().await.unwrap();
        cache.get().await.unwrap();

        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
