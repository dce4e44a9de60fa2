//! The `$connect` authorizer: allow, deny for each error kind, 401 for missing and expired tokens,
//! `alg: none` and HS/RS confusion refused, JWKS caching and rotation, and no token in any log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support;

use adapters::auth::{
    Audience, AuthorizerError, Backoff, JwksSource, JwtVerifier, Keys, MAX_JWKS_BYTES,
    VerifierError, authorize_json,
};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use base64::Engine;
use domain::{TokenError, TokenVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/keys/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/keys/rsa-public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/keys/ec-private.pem");
const JWKS: &str = include_str!("fixtures/keys/jwks.json");
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/$connect";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(overrides: Value) -> Value {
    let mut claims = json!({
        "sub": "alice",
        "iss": "https://issuer.test",
        "aud": "ws-chat",
        "exp": now() + 600,
        "nbf": now() - 10,
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap()
}

fn es256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn secret_verifier() -> JwtVerifier {
    JwtVerifier::new(
        Keys::Secret(SECRET.as_bytes().to_vec()),
        Some("https://issuer.test".into()),
        Some(Audience::Aud("ws-chat".into())),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn event(token: Option<&str>) -> Value {
    let mut event = json!({"type": "REQUEST", "methodArn": ARN, "headers": {}});
    if let Some(token) = token {
        event["queryStringParameters"] = json!({ "token": token });
    }
    event
}

#[tokio::test]
async fn a_valid_token_is_allowed_on_this_connect_arn_with_its_principal() {
    let token = hs256(&claims(json!({})), SECRET);

    let response = authorize_json(&secret_verifier(), &event(Some(&token)))
        .await
        .unwrap();

    assert_eq!(response["principalId"], "alice");
    assert_eq!(response["context"]["sub"], "alice");
    let statement = &response["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Resource"], ARN);
    assert_eq!(statement["Action"], "execute-api:Invoke");
}

#[tokio::test]
async fn missing_and_expired_tokens_get_401_so_the_client_fetches_a_new_one() {
    let expired = hs256(&claims(json!({"exp": now() - 60})), SECRET);
    for event in [event(None), event(Some("")), event(Some(&expired))] {
        let result = authorize_json(&secret_verifier(), &event).await;
        assert!(
            matches!(result, Err(AuthorizerError::Unauthorized)),
            "{result:?}"
        );
        assert_eq!(result.unwrap_err().to_string(), "Unauthorized");
    }
}

#[tokio::test]
async fn every_other_bad_token_is_denied_with_its_reason() {
    let rs_for_hs = rs256(&claims(json!({})), "rsa-1");
    let cases = [
        (
            "wrong secret",
            hs256(
                &claims(json!({})),
                "another-secret-that-is-also-long-enough",
            ),
            TokenError::BadSignature,
        ),
        (
            "wrong issuer",
            hs256(&claims(json!({"iss": "https://evil.test"})), SECRET),
            TokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            hs256(&claims(json!({"aud": "other"})), SECRET),
            TokenError::WrongAudience,
        ),
        (
            "not yet valid",
            hs256(&claims(json!({"nbf": now() + 600})), SECRET),
            TokenError::NotYetValid,
        ),
        (
            "alg none",
            unsigned(&claims(json!({}))),
            TokenError::BadSignature,
        ),
        (
            "RS256 token to an HS256 verifier",
            rs_for_hs,
            TokenError::BadSignature,
        ),
        (
            "garbage",
            "not.a.jwt".to_string(),
            TokenError::Malformed(String::new()),
        ),
        (
            "no sub",
            hs256(
                &json!({"iss": "https://issuer.test", "aud": "ws-chat", "exp": now() + 60}),
                SECRET,
            ),
            TokenError::Malformed(String::new()),
        ),
    ];
    for (name, token, expected) in cases {
        let verdict = secret_verifier().verify(&token).await.unwrap_err();
        assert_eq!(
            std::mem::discriminant(&verdict),
            std::mem::discriminant(&expected),
            "{name}: {verdict:?}"
        );
        let response = authorize_json(&secret_verifier(), &event(Some(&token)))
            .await
            .unwrap();
        assert_eq!(
            response["policyDocument"]["Statement"][0]["Effect"], "Deny",
            "{name}"
        );
        assert!(
            response.get("context").is_none(),
            "{name}: a denied token carries no context"
        );
    }
}

#[tokio::test]
async fn an_event_without_a_method_arn_is_a_clear_error() {
    let result = authorize_json(
        &secret_verifier(),
        &json!({"queryStringParameters": {"token": "x"}}),
    )
    .await;
    assert!(
        matches!(result, Err(AuthorizerError::BadEvent(_))),
        "{result:?}"
    );
}

/// Serves a JWKS document that the test can swap, counting fetches. An empty document means the
/// endpoint is down (503); `/moved` redirects to the document.
struct JwksServer {
    url: String,
    moved_url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const JWKS_PATH: &str = "/.well-known/jwks.json";

async fn jwks_server(document: &str) -> JwksServer {
    let document = Arc::new(Mutex::new(document.to_string()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (doc, count) = (document.clone(), fetches.clone());
    let app = Router::new()
        .route(
            JWKS_PATH,
            get(move || {
                let (doc, count) = (doc.clone(), count.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = doc.lock().unwrap().clone();
                    if body.is_empty() {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    ([("content-type", "application/json")], body).into_response()
                }
            }),
        )
        .route("/moved", get(|| async { Redirect::temporary(JWKS_PATH) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer {
        url: format!("{base}{JWKS_PATH}"),
        moved_url: format!("{base}/moved"),
        document,
        fetches,
        task,
    }
}

fn verifier_for(source: JwksSource, audience: Audience) -> JwtVerifier {
    JwtVerifier::new(
        Keys::Jwks(Box::new(source)),
        Some("https://issuer.test".into()),
        Some(audience),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn jwks_verifier(server: &JwksServer, min_refetch: Duration) -> JwtVerifier {
    let source = JwksSource::new(&server.url, Duration::from_secs(3600))
        .unwrap()
        .with_min_refetch(min_refetch);
    verifier_for(source, Audience::Aud("ws-chat".into()))
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_the_jwks_which_is_fetched_once() {
    let server = jwks_server(JWKS).await;
    let verifier = jwks_verifier(&server, Duration::from_secs(30));

    for _ in 0..3 {
        assert_eq!(
            verifier
                .verify(&rs256(&claims(json!({})), "rsa-1"))
                .await
                .unwrap()
                .principal
                .as_str(),
            "alice"
        );
        assert_eq!(
            verifier
                .verify(&es256(&claims(json!({"sub": "bob"})), "ec-1"))
                .await
                .unwrap()
                .principal
                .as_str(),
            "bob"
        );
    }

    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hs256_tokens_signed_with_the_public_key_are_refused_by_a_jwks_verifier() {
    let server = jwks_server(JWKS).await;
    let verifier = jwks_verifier(&server, Duration::from_secs(30));
    // The classic confusion: HMAC keyed with the RSA public key the attacker can read.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let forged = encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();

    assert_eq!(
        verifier.verify(&forged).await,
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verifier.verify(&unsigned(&claims(json!({})))).await,
        Err(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_so_rotated_keys_work_but_random_kids_cannot_flood_it()
 {
    let rotated = JWKS.replace("\"rsa-1\"", "\"rsa-2\"");
    let server = jwks_server(JWKS).await;
    let verifier = jwks_verifier(&server, Duration::ZERO);
    verifier
        .verify(&rs256(&claims(json!({})), "rsa-1"))
        .await
        .unwrap();

    *server.document.lock().unwrap() = rotated;
    let principal = verifier
        .verify(&rs256(&claims(json!({})), "rsa-2"))
        .await
        .unwrap();

    assert_eq!(principal.principal.as_str(), "alice");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

    let guarded = jwks_verifier(&server, Duration::from_secs(60));
    guarded
        .verify(&rs256(&claims(json!({})), "rsa-2"))
        .await
        .unwrap();
    for i in 0..5 {
        let result = guarded
            .verify(&rs256(&claims(json!({})), &format!("made-up-{i}")))
            .await;
        assert_eq!(result, Err(TokenError::BadSignature));
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        3,
        "one fetch for the new verifier, none for made-up kids"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_keys_unavailable_not_a_deny() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let verifier = verifier_for(
        JwksSource::new(&url, Duration::from_secs(60)).unwrap(),
        Audience::Aud("ws-chat".into()),
    );

    let result = authorize_json(&verifier, &event(Some(&rs256(&claims(json!({})), "rsa-1")))).await;

    assert!(
        matches!(
            result,
            Err(AuthorizerError::Unavailable(TokenError::KeysUnavailable(_)))
        ),
        "{result:?}"
    );
}

#[test]
fn a_jwks_verifier_without_an_issuer_or_an_audience_cannot_be_built() {
    let source =
        || JwksSource::new("https://issuer.test/jwks.json", Duration::from_secs(60)).unwrap();
    let aud = || Some(Audience::Aud("ws-chat".into()));
    let issuer = || Some("https://issuer.test".to_string());
    for (issuer, audience) in [(None, aud()), (issuer(), None), (None, None)] {
        let built = JwtVerifier::new(
            Keys::Jwks(Box::new(source())),
            issuer,
            audience,
            Duration::ZERO,
        );
        assert_eq!(
            built.err(),
            Some(VerifierError::JwksWithoutIssuerOrAudience)
        );
    }
}

/// A Cognito access token: no `aud`, the app client in `client_id`, `token_use` = `access`.
fn cognito_access(overrides: Value) -> Value {
    let mut claims = claims(json!({"client_id": "app-client", "token_use": "access"}));
    claims.as_object_mut().unwrap().remove("aud");
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

#[tokio::test]
async fn cognito_access_tokens_must_name_this_app_client_and_be_access_tokens() {
    let server = jwks_server(JWKS).await;
    let source = JwksSource::new(&server.url, Duration::from_secs(3600)).unwrap();
    let verifier = verifier_for(source, Audience::CognitoClientId("app-client".into()));

    let ours = rs256(&cognito_access(json!({})), "rsa-1");
    assert_eq!(
        verifier.verify(&ours).await.unwrap().principal.as_str(),
        "alice"
    );

    let refused = [
        (
            "another app's client",
            cognito_access(json!({"client_id": "other-app"})),
        ),
        ("an ID token", cognito_access(json!({"token_use": "id"}))),
        ("no client_id", claims(json!({"token_use": "access"}))),
        ("no token_use", claims(json!({"client_id": "app-client"}))),
    ];
    for (name, claims) in refused {
        let result = verifier.verify(&rs256(&claims, "rsa-1")).await;
        assert_eq!(result, Err(TokenError::WrongAudience), "{name}");
    }
}

#[tokio::test]
async fn a_jwks_verifier_refuses_a_token_minted_for_another_application() {
    let server = jwks_server(JWKS).await;
    let verifier = jwks_verifier(&server, Duration::from_secs(30));

    let for_another_app = rs256(&claims(json!({"aud": "another-app"})), "rsa-1");
    let without_audience = rs256(&cognito_access(json!({})), "rsa-1");

    assert_eq!(
        verifier.verify(&for_another_app).await,
        Err(TokenError::WrongAudience)
    );
    assert!(matches!(
        verifier.verify(&without_audience).await,
        Err(TokenError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_redirect_from_the_jwks_endpoint_is_not_followed() {
    let server = jwks_server(JWKS).await;
    let source = JwksSource::new(&server.moved_url, Duration::from_secs(3600)).unwrap();
    let verifier = verifier_for(source, Audience::Aud("ws-chat".into()));

    let result = verifier.verify(&rs256(&claims(json!({})), "rsa-1")).await;

    assert!(
        matches!(&result, Err(TokenError::KeysUnavailable(why)) if why.contains("307")),
        "{result:?}"
    );
    assert_eq!(server.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_jwks_document_over_the_size_cap_is_refused() {
    let mut oversized: Value = serde_json::from_str(JWKS).unwrap();
    oversized["padding"] = json!("x".repeat(MAX_JWKS_BYTES));
    let server = jwks_server(&oversized.to_string()).await;
    let verifier = jwks_verifier(&server, Duration::from_secs(30));

    let result = verifier.verify(&rs256(&claims(json!({})), "rsa-1")).await;

    assert!(
        matches!(&result, Err(TokenError::KeysUnavailable(why)) if why.contains("bytes")),
        "{result:?}"
    );
}

#[tokio::test]
async fn keys_published_for_anything_but_signatures_are_ignored() {
    let mut document: Value = serde_json::from_str(JWKS).unwrap();
    document["keys"][0]["use"] = json!("enc");
    let server = jwks_server(&document.to_string()).await;
    let verifier = jwks_verifier(&server, Duration::from_secs(30));

    let with_encryption_key = rs256(&claims(json!({})), "rsa-1");
    let with_signing_key = es256(&claims(json!({})), "ec-1");

    assert_eq!(
        verifier.verify(&with_encryption_key).await,
        Err(TokenError::BadSignature)
    );
    assert!(verifier.verify(&with_signing_key).await.is_ok());
}

#[tokio::test]
async fn while_the_jwks_endpoint_is_down_handshakes_fail_fast_instead_of_each_fetching() {
    let server = jwks_server("").await;
    let source = JwksSource::new(&server.url, Duration::from_secs(3600))
        .unwrap()
        .with_backoff(Backoff {
            first: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        });
    let verifier = verifier_for(source, Audience::Aud("ws-chat".into()));
    let token = rs256(&claims(json!({})), "rsa-1");

    let handshake = event(Some(&token));

    let results =
        futures::future::join_all((0..20).map(|_| authorize_json(&verifier, &handshake))).await;

    for result in &results {
        assert!(
            matches!(
                result,
                Err(AuthorizerError::Unavailable(TokenError::KeysUnavailable(_)))
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "one fetch, then the back-off answers"
    );
}

#[tokio::test]
async fn an_allowed_connection_logs_a_hash_of_its_principal_never_the_principal() {
    let (captured, _guard) = support::CapturedLogs::start();
    let token = hs256(&claims(json!({"sub": "alice@corp.example"})), SECRET);

    authorize_json(&secret_verifier(), &event(Some(&token)))
        .await
        .unwrap();

    let logs = captured.text();
    assert!(logs.contains("connection allowed"), "{logs}");
    assert!(
        !logs.contains("alice"),
        "the principal reached the logs: {logs}"
    );
    let principal = domain::Principal::parse("alice@corp.example").unwrap();
    let hash = adapters::telemetry::principal_hash(&principal);
    assert!(
        logs.contains(&hash),
        "the hash tells connections apart: {logs}"
    );
}

#[tokio::test]
async fn no_token_or_part_of_one_ever_reaches_the_logs() {
    let (captured, _guard) = support::CapturedLogs::start();
    let tokens = [
        hs256(&claims(json!({})), SECRET),
        hs256(&claims(json!({"aud": "other"})), SECRET),
        hs256(&claims(json!({"exp": now() - 60})), SECRET),
        unsigned(&claims(json!({}))),
    ];

    for token in &tokens {
        let _ = authorize_json(&secret_verifier(), &event(Some(token))).await;
    }

    let logs = captured.text();
    assert!(
        logs.contains("connection allowed") && logs.contains("connection refused"),
        "{logs}"
    );
    for token in &tokens {
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!logs.contains(part), "a token part leaked into the logs");
        }
    }
}
