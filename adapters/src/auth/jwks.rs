//! A JWKS document, fetched once, cached, refreshed on an interval and when a token names a key
//! the cache does not have (keys rotate), but never more than once per `min_refetch`, so tokens
//! with made-up `kid`s cannot turn the authorizer into a load generator.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain::TokenError;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

pub struct JwksSource {
    url: String,
    http: reqwest::Client,
    refresh_every: Duration,
    min_refetch: Duration,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
}

impl JwksSource {
    pub fn new(url: impl Into<String>, refresh_every: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            url: url.into(),
            http,
            refresh_every,
            min_refetch: Duration::from_secs(30),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// For tests: how soon an unknown `kid` may trigger another fetch.
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    pub async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), TokenError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|age| age >= self.refresh_every);
        let unknown_and_may_refetch =
            !cache.keys.contains_key(kid) && age.is_none_or(|age| age >= self.min_refetch);
        if stale || unknown_and_may_refetch {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                // Keep serving the keys we have: a JWKS outage must not lock every user out.
                Err(e) if !cache.keys.is_empty() => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using cached keys");
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) => return Err(e),
            }
        }
        cache.keys.get(kid).cloned().ok_or(TokenError::BadSignature)
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, TokenError> {
        let unavailable = |e: reqwest::Error| TokenError::KeysUnavailable(e.to_string());
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Only the algorithms the verifier accepts; a key's declared `alg` wins.
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
                (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
                (Some(_), _) => continue,
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                (None, _) => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, algorithm));
            }
        }
        Ok(keys)
    }
}
