//! A JWKS document, fetched once, cached, refreshed on an interval and when a token names a key
//! the cache does not have (keys rotate), but never more than once per `min_refetch`, so tokens
//! with made-up `kid`s cannot turn the authorizer into a load generator.
//!
//! The fetch itself is guarded: https only (plain http to a loopback address, for tests and local
//! runs), no redirects (a redirect is how an attacker who controls some page of the IdP's host
//! would swap in their keys), at most `MAX_JWKS_BYTES`, and only keys meant for signatures. While
//! the cache is empty and the endpoint is down, fetches back off instead of every handshake
//! waiting for its own failed fetch, one after another, behind the cache's lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use domain::TokenError;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use tokio::sync::Mutex;

/// A Cognito user pool's JWKS is about 1 KB; this leaves room for many keys, not for a flood.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "JWKS_URL = {0:?} must be an https URL (plain http only to a loopback address, for local runs)"
)]
pub struct InsecureJwksUrl(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksSourceError {
    #[error(transparent)]
    Insecure(#[from] InsecureJwksUrl),
    /// The HTTP client could not be built (its TLS roots, say): failing here beats a client
    /// without the timeout and the no-redirect rule.
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(String),
}

pub struct JwksSource {
    url: Url,
    http: reqwest::Client,
    refresh_every: Duration,
    min_refetch: Duration,
    backoff: Backoff,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
    /// Failed fetches in a row while the cache was empty, and when the next may be tried.
    failures: u32,
    next_try: Option<Instant>,
}

/// Pauses between fetches while no key was ever had: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The pause after `failures` failed fetches in a row (1-based).
    pub fn after(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// https anywhere; http only to this machine.
fn checked_url(raw: &str) -> Result<Url, InsecureJwksUrl> {
    let refuse = || InsecureJwksUrl(raw.to_string());
    let url = Url::parse(raw).map_err(|_| refuse())?;
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(refuse()),
    }
}

impl JwksSource {
    pub fn new(url: &str, refresh_every: Duration) -> Result<Self, JwksSourceError> {
        let url = checked_url(url)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksSourceError::Client(e.to_string()))?;
        Ok(Self {
            url,
            http,
            refresh_every,
            min_refetch: Duration::from_secs(30),
            backoff: Backoff::default(),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// For tests: how soon an unknown `kid` may trigger another fetch.
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    /// For tests: the pauses between fetches while the endpoint is down and no key is cached.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), TokenError> {
        let mut cache = self.cache.lock().await;
        if cache.keys.is_empty()
            && let Some(next_try) = cache.next_try
            && Instant::now() < next_try
        {
            return Err(TokenError::KeysUnavailable(format!(
                "the JWKS endpoint failed {} times in a row; next try in {} ms",
                cache.failures,
                next_try
                    .saturating_duration_since(Instant::now())
                    .as_millis()
            )));
        }
        let age = cache.fetched_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|age| age >= self.refresh_every);
        let unknown_and_may_refetch =
            !cache.keys.contains_key(kid) && age.is_none_or(|age| age >= self.min_refetch);
        if stale || unknown_and_may_refetch {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                    cache.failures = 0;
                    cache.next_try = None;
                }
                // Keep serving the keys we have: a JWKS outage must not lock every user out.
                Err(e) if !cache.keys.is_empty() => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using cached keys");
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) => {
                    cache.failures = cache.failures.saturating_add(1);
                    cache.next_try = Some(Instant::now() + self.backoff.after(cache.failures));
                    tracing::warn!(error = %e, failures = cache.failures, "JWKS fetch failed");
                    return Err(e);
                }
            }
        }
        cache.keys.get(kid).cloned().ok_or(TokenError::BadSignature)
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, TokenError> {
        let unavailable = |e: String| TokenError::KeysUnavailable(e);
        let mut response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        // Redirects are not followed, so a 3xx lands here too.
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "the JWKS endpoint answered {}",
                response.status()
            )));
        }
        let too_large = || unavailable(format!("the JWKS is over {MAX_JWKS_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        // Bounded: each chunk grows `body`, which may not pass the cap.
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("the JWKS is not a JWK set: {e}")))?;
        Ok(signing_keys(&set))
    }
}

/// The keys of `set` this verifier may use: with a `kid`, meant for signatures (`use` absent or
/// `sig`), of an algorithm it accepts. A key's declared `alg` wins over its type.
fn signing_keys(set: &JwkSet) -> HashMap<String, (DecodingKey, Algorithm)> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if !matches!(
            jwk.common.public_key_use,
            None | Some(PublicKeyUse::Signature)
        ) {
            continue;
        }
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
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        let accepted = [
            "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://127.3.2.1/jwks.json",
            "http://localhost:9000/jwks.json",
            "http://[::1]:9000/jwks.json",
        ];
        for url in accepted {
            assert!(checked_url(url).is_ok(), "{url}");
        }
        let refused = [
            "http://issuer.example/jwks.json",
            "http://127.0.0.1.example/jwks.json",
            "http://10.0.0.1/jwks.json",
            "ftp://issuer.example/jwks.json",
            "file:///etc/jwks.json",
            "jwks.json",
            "",
        ];
        for url in refused {
            assert_eq!(
                checked_url(url).unwrap_err(),
                InsecureJwksUrl(url.into()),
                "{url}"
            );
        }
    }

    #[test]
    fn the_backoff_doubles_from_its_first_pause_up_to_its_cap() {
        let backoff = Backoff::default();
        let seconds: Vec<u64> = (1..=7).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff.after(u32::MAX), backoff.max);
    }
}
