//! SigV4 for the one request shape the signed notifier sends: `POST` or `DELETE` to
//! `{endpoint}/@connections/{id}`, signed in the `Authorization` header over `host`,
//! `x-amz-date`, the session token and, with a body, `content-type` and `content-length`.
//!
//! `aws-sigv4`'s general signer (any method, query, header set) spent most of its time building
//! and sorting header maps and strings, and derived the signing key again for every request
//! (four HMACs). Here the canonical request is written straight into one buffer, in an order
//! fixed by the request's shape, and the signing key is kept for as long as the day, the secret
//! and the region stay the same. The key derivation and the final HMAC are still `aws-sigv4`'s.
//! `aws-sigv4`'s general signer stays the reference: a property test signs random requests both
//! ways and compares every signed header (the tests below), and `tests/notifier_signature.rs`
//! compares the notifier with the SDK.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderName, HeaderValue, Request, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// A path label, encoded as the SDK encodes one: everything but RFC 3986 unreserved characters.
/// Connection ids are base64 (`=`, `+`, `/`), so this matters.
pub(crate) const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path as the canonical request holds it: already-encoded, encoded again, except
/// unreserved characters and `/` (the SDK's `PercentEncodingMode::Double`, "greedy" labels).
const CANONICAL_PATH: &AsciiSet = &LABEL.remove(b'/');

/// The signing key of one day, secret and region: HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date),
/// region), service), "aws4_request"). Valid until the date or the credentials change.
struct SigningKey {
    date: String,
    secret: String,
    key: Vec<u8>,
}

/// Signs `@connections` requests for one region and service.
pub(crate) struct Signer {
    region: String,
    service: &'static str,
    key: Mutex<Option<SigningKey>>,
}

impl Signer {
    pub(crate) fn new(region: &str, service: &'static str) -> Signer {
        Signer {
            region: region.to_string(),
            service,
            key: Mutex::new(None),
        }
    }

    /// Adds `x-amz-date`, the session token (if the credentials have one) and `Authorization` to
    /// `request`, which must carry a `host` header, and `content-type` and `content-length` if
    /// and only if it has a body.
    pub(crate) fn sign(
        &self,
        request: &mut Request<hyper::body::Bytes>,
        identity: &Identity,
        time: SystemTime,
    ) -> Result<(), String> {
        let credentials = identity
            .data::<aws_credential_types::Credentials>()
            .ok_or("the identity holds no AWS credentials")?;
        let stamp = Stamp::of(time);
        let token = credentials.session_token();
        let has_body = !request.body().is_empty();
        let signed_headers = match (has_body, token.is_some()) {
            (true, true) => "content-length;content-type;host;x-amz-date;x-amz-security-token",
            (true, false) => "content-length;content-type;host;x-amz-date",
            (false, true) => "host;x-amz-date;x-amz-security-token",
            (false, false) => "host;x-amz-date",
        };

        let mut canonical = String::with_capacity(512);
        canonical.push_str(request.method().as_str());
        canonical.push('\n');
        canonical.extend(utf8_percent_encode(
            &normalize_path(request.uri().path()),
            CANONICAL_PATH,
        ));
        canonical.push_str("\n\n");
        let header = |name: &HeaderName| {
            request
                .headers()
                .get(name)
                .ok_or_else(|| format!("the request has no {name} header"))?
                .to_str()
                .map(|value| value.trim_matches(' '))
                .map_err(|e| format!("header {name} is not text: {e}"))
        };
        if has_body {
            push_header(
                &mut canonical,
                "content-length",
                header(&header::CONTENT_LENGTH)?,
            );
            push_header(
                &mut canonical,
                "content-type",
                header(&header::CONTENT_TYPE)?,
            );
        }
        push_header(&mut canonical, "host", header(&header::HOST)?);
        push_header(&mut canonical, "x-amz-date", &stamp.date_time);
        if let Some(token) = token {
            push_header(
                &mut canonical,
                "x-amz-security-token",
                token.trim_matches(' '),
            );
        }
        canonical.push('\n');
        canonical.push_str(signed_headers);
        canonical.push('\n');
        push_hex(&mut canonical, &Sha256::digest(request.body()));

        let scope = format!(
            "{}/{}/{}/aws4_request",
            stamp.date, self.region, self.service
        );
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str(ALGORITHM);
        string_to_sign.push('\n');
        string_to_sign.push_str(&stamp.date_time);
        string_to_sign.push('\n');
        string_to_sign.push_str(&scope);
        string_to_sign.push('\n');
        push_hex(&mut string_to_sign, &Sha256::digest(canonical.as_bytes()));

        let signature = self.with_key(credentials.secret_access_key(), &stamp.date, time, |key| {
            calculate_signature(key, string_to_sign.as_bytes())
        });
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );

        let headers = request.headers_mut();
        headers.insert(X_AMZ_DATE, header_value(stamp.date_time)?);
        if let Some(token) = token {
            let mut token = header_value(token.to_string())?;
            token.set_sensitive(true);
            headers.insert(X_AMZ_SECURITY_TOKEN, token);
        }
        let mut authorization = header_value(authorization)?;
        authorization.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, authorization);
        Ok(())
    }

    /// Runs `sign` with the signing key of `date`, derived only when the day, the secret or
    /// (never, for one signer) the region changed since the last request.
    fn with_key<T>(
        &self,
        secret: &str,
        date: &str,
        time: SystemTime,
        sign: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
        match cached.as_ref() {
            Some(key) if key.date == date && key.secret == secret => sign(&key.key),
            _ => {
                let key = SigningKey {
                    date: date.to_string(),
                    secret: secret.to_string(),
                    key: generate_signing_key(secret, time, &self.region, self.service)
                        .as_ref()
                        .to_vec(),
                };
                let signed = sign(&key.key);
                *cached = Some(key);
                signed
            }
        }
    }
}

fn header_value(value: String) -> Result<HeaderValue, String> {
    HeaderValue::try_from(value).map_err(|e| format!("not a header value: {e}"))
}

fn push_header(canonical: &mut String, name: &str, value: &str) {
    canonical.push_str(name);
    canonical.push(':');
    canonical.push_str(value);
    canonical.push('\n');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
}

/// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` of a time, in UTC.
struct Stamp {
    date: String,
    date_time: String,
}

impl Stamp {
    fn of(time: SystemTime) -> Stamp {
        // Before 1970 is no time to sign at: such a clock is signed as 1970-01-01.
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let (year, month, day) = civil_date(seconds / 86_400);
        let of_day = seconds % 86_400;
        let mut date_time = String::with_capacity(16);
        let _ = write!(
            date_time,
            "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        Stamp {
            date: date_time[..8].to_string(),
            date_time,
        }
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The path with `.` and `..` segments resolved and empty segments dropped, as the SDK's
/// default `UriPathNormalizationMode::Enabled` does; unchanged (and not copied) when it has
/// neither a dot nor a double slash, which is every path this notifier sends to a normal stage.
fn normalize_path(path: &str) -> Cow<'_, str> {
    let path: Cow<'_, str> = if path.is_empty() {
        return Cow::Borrowed("/");
    } else if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    if !(path.contains('.') || path.contains("//")) {
        return path;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    let ends_with_slash = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if ends_with_slash && !normalized.ends_with('/') {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// `aws-sigv4`'s general signer, with the SDK's default settings, for execute-api in `region`:
/// the reference [`Signer`] is tested against, and the signing half of the benchmark's floor
/// client (`bench cpu-post`). Adds `x-amz-date`, the session token and `Authorization`.
pub fn sign_with_aws_sigv4(
    request: &mut Request<hyper::body::Bytes>,
    identity: &Identity,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    sign_for_service(request, identity, region, "execute-api", time)
}

/// `aws-sigv4`'s general signer for any service (`events` for EventBridge's `PutEvents`).
pub fn sign_for_service(
    request: &mut Request<hyper::body::Bytes>,
    identity: &Identity,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let uri = request.uri().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            value
                .to_str()
                .map(|value| (name.as_str(), value))
                .map_err(|e| format!("header {name} is not text: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| format!("unsignable request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_credential_types::Credentials;
    use hyper::body::Bytes;
    use proptest::prelude::*;

    use super::*;

    const SIGNED: [&str; 3] = ["authorization", "x-amz-date", "x-amz-security-token"];

    fn request(method: &str, url: &str, body: &[u8]) -> Request<Bytes> {
        let uri: http::Uri = url.parse().unwrap();
        let mut builder = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, uri.authority().unwrap().as_str());
        if !body.is_empty() {
            builder = builder
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, body.len());
        }
        builder.body(Bytes::copy_from_slice(body)).unwrap()
    }

    fn signed_by_aws_sigv4(
        mut request: Request<Bytes>,
        identity: &Identity,
        region: &str,
        time: SystemTime,
    ) -> Vec<Option<String>> {
        sign_with_aws_sigv4(&mut request, identity, region, time).unwrap();
        signature_headers(&request)
    }

    fn signed_here(
        signer: &Signer,
        mut request: Request<Bytes>,
        identity: &Identity,
        time: SystemTime,
    ) -> Vec<Option<String>> {
        signer.sign(&mut request, identity, time).unwrap();
        signature_headers(&request)
    }

    fn signature_headers(request: &Request<Bytes>) -> Vec<Option<String>> {
        SIGNED
            .iter()
            .map(|name| {
                request
                    .headers()
                    .get(*name)
                    .map(|v| v.to_str().unwrap().to_string())
            })
            .collect()
    }

    fn identity(token: Option<String>) -> Identity {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token,
            None,
            "test",
        )
        .into()
    }

    /// A URL as the notifier builds one: the endpoint, `/@connections/`, the id encoded as a label.
    fn url(endpoint: &str, id: &str) -> String {
        format!("{endpoint}/@connections/{}", utf8_percent_encode(id, LABEL))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn every_request_is_signed_as_aws_sigv4_signs_it(
            endpoint in prop::sample::select(vec![
                "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
                "https://ws.example.com",
                "https://ws.example.com/base/path",
                "http://127.0.0.1:3001/local",
                "http://localhost:80/st.age",
            ]),
            id in "[!-~]{1,40}",
            body in prop::collection::vec(any::<u8>(), 0..300),
            delete in any::<bool>(),
            token in prop::option::of("[A-Za-z0-9+/=]{20,60}"),
            seconds in 0u64..4_102_444_800,
        ) {
            let identity = identity(token);
            let time = UNIX_EPOCH + Duration::from_secs(seconds);
            let (method, body) = if delete { ("DELETE", &[][..]) } else { ("POST", &body[..]) };
            let request = || request(method, &url(endpoint, &id), body);
            let signer = Signer::new("eu-west-1", "execute-api");

            prop_assert_eq!(
                signed_here(&signer, request(), &identity, time),
                signed_by_aws_sigv4(request(), &identity, "eu-west-1", time)
            );
        }
    }

    #[test]
    fn a_kept_signing_key_is_not_used_on_another_day_or_with_another_secret() {
        let signer = Signer::new("us-east-1", "execute-api");
        let request = || request("POST", "https://ws.example.com/@connections/abc=", b"hi");
        let noon = UNIX_EPOCH + Duration::from_secs(1_764_158_400);
        let next_day = noon + Duration::from_secs(86_400);
        let rotated: Identity =
            Credentials::new("AKIDEXAMPLE", "another-secret", None, None, "test").into();

        for (identity, time) in [
            (identity(None), noon),
            (identity(None), next_day),
            (rotated, next_day),
        ] {
            assert_eq!(
                signed_here(&signer, request(), &identity, time),
                signed_by_aws_sigv4(request(), &identity, "us-east-1", time)
            );
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        for (seconds, expected) in [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (1_764_201_599, "20251126T235959Z"),
            (4_102_444_799, "20991231T235959Z"),
        ] {
            assert_eq!(
                Stamp::of(UNIX_EPOCH + Duration::from_secs(seconds)).date_time,
                expected
            );
        }
    }

    #[test]
    fn dot_segments_and_double_slashes_are_resolved_as_the_sdk_resolves_them() {
        for (path, expected) in [
            ("/prod/@connections/abc", "/prod/@connections/abc"),
            ("/prod/@connections/..", "/prod/"),
            ("/prod/@connections/.", "/prod/@connections/"),
            ("//prod//@connections/a", "/prod/@connections/a"),
            ("", "/"),
        ] {
            assert_eq!(normalize_path(path), expected, "{path}");
        }
    }
}
