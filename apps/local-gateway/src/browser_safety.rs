//! Any web page the developer visits can reach a server on their laptop: it can open a WebSocket
//! to it, POST to it with `fetch(..., {mode: "no-cors"})`, or rebind a DNS name to 127.0.0.1.
//! These rules keep such pages out while the gateway's own chat page, wscat and the AWS SDKs get
//! in: browsers always send `Origin` (and a page cannot forge it or `Host`), tools and SDKs don't
//! send `Origin`, and SDKs always sign (`Authorization: AWS4-HMAC-SHA256 ...`).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Who may open a WebSocket besides clients that send no `Origin` (tools, SDKs) and the
/// gateway's own chat page.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Extra origins (`https://app.example:8443`); `*` allows every origin.
    pub allowed_origins: Vec<String>,
}

impl BrowserPolicy {
    /// True when a WebSocket upgrade with these headers may proceed.
    pub(crate) fn allows_websocket(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = header_str(headers, header::ORIGIN) else {
            return true;
        };
        let own = header_str(headers, header::HOST).map(|host| format!("http://{host}"));
        own.is_some_and(|own| origin.eq_ignore_ascii_case(&own))
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }
}

/// True when a request for the gateway's own data (the inspector's feed) comes from one of the
/// gateway's own pages, or from no page at all (curl). Unlike WebSockets, `--allowed-origin`
/// does not open it: the feed shows every principal and message. Browsers send `Origin` on
/// cross-origin requests and `Sec-Fetch-Site` on all of them; either one that says "another
/// site" refuses it.
pub(crate) fn same_origin_only(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    let Some(origin) = header_str(headers, header::ORIGIN) else {
        return true;
    };
    header_str(headers, header::HOST)
        .is_some_and(|host| origin.eq_ignore_ascii_case(&format!("http://{host}")))
}

/// Why a management request is refused; `None` lets it through. The signature itself is not
/// verified: the header only proves the caller is not a web page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManagementRefusal {
    FromABrowser,
    Unsigned,
}

pub(crate) fn management_refusal(headers: &HeaderMap) -> Option<ManagementRefusal> {
    if headers.contains_key(header::ORIGIN) {
        return Some(ManagementRefusal::FromABrowser);
    }
    let signed = header_str(headers, header::AUTHORIZATION)
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256 "));
    (!signed).then_some(ManagementRefusal::Unsigned)
}

/// Middleware, its state the address the gateway is bound to: when that is a loopback address,
/// only loopback `Host` names are served, so a page on `attacker.example` whose DNS name now
/// points at 127.0.0.1 is refused.
pub(crate) async fn require_loopback_host(
    State(bound): State<IpAddr>,
    request: Request,
    next: Next,
) -> Response {
    let host = header_str(request.headers(), header::HOST);
    if bound.is_loopback() && !host.is_some_and(is_loopback_host) {
        return (
            StatusCode::FORBIDDEN,
            "Forbidden: this gateway only answers to a loopback Host (127.0.0.1, localhost)",
        )
            .into_response();
    }
    next.run(request).await
}

/// `localhost`, `*.localhost` or a loopback IP, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The start-up warning for an address other machines (and their browsers) can reach.
pub fn exposure_warning(ip: IpAddr) -> Option<String> {
    (!ip.is_loopback()).then(|| {
        format!(
            "WARNING: listening on {ip}, which other machines can reach. The @connections API has \
             no real authentication (signatures are not verified) and Host names are not \
             checked: anyone on this network can post to, read and close your connections. \
             Bind to 127.0.0.1 unless you mean it."
        )
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_with_and_without_ports() {
        for host in [
            "127.0.0.1:3001",
            "127.0.0.1",
            "localhost:3001",
            "LOCALHOST",
            "app.localhost:3001",
            "[::1]:3001",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example:3001",
            "localhost.attacker.example",
            "10.0.0.2:3001",
            "[::2]:3001",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn only_non_loopback_addresses_get_the_exposure_warning() {
        assert!(exposure_warning("0.0.0.0".parse().unwrap()).is_some());
        assert!(exposure_warning("192.168.1.10".parse().unwrap()).is_some());
        assert!(exposure_warning("127.0.0.1".parse().unwrap()).is_none());
        assert!(exposure_warning("::1".parse().unwrap()).is_none());
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_inspector_feed_is_for_the_gateway_s_own_pages_only() {
        let host = (header::HOST, "127.0.0.1:3001");
        let own = (header::ORIGIN, "http://127.0.0.1:3001");
        let foreign = (header::ORIGIN, "http://attacker.example");
        let same_site = (
            header::HeaderName::from_static("sec-fetch-site"),
            "same-origin",
        );
        let cross_site = (
            header::HeaderName::from_static("sec-fetch-site"),
            "cross-site",
        );

        assert!(same_origin_only(&headers(std::slice::from_ref(&host))));
        assert!(same_origin_only(&headers(&[host.clone(), own.clone()])));
        assert!(same_origin_only(&headers(&[host.clone(), same_site])));
        assert!(!same_origin_only(&headers(&[host.clone(), foreign])));
        assert!(!same_origin_only(&headers(&[host, own, cross_site])));
    }

    #[test]
    fn management_requests_must_be_signed_and_not_come_from_a_browser() {
        let signed = (
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=local/...",
        );
        assert_eq!(
            management_refusal(&headers(std::slice::from_ref(&signed))),
            None
        );
        assert_eq!(
            management_refusal(&headers(&[])),
            Some(ManagementRefusal::Unsigned)
        );
        assert_eq!(
            management_refusal(&headers(&[(header::AUTHORIZATION, "Bearer x")])),
            Some(ManagementRefusal::Unsigned)
        );
        assert_eq!(
            management_refusal(&headers(&[signed, (header::ORIGIN, "null")])),
            Some(ManagementRefusal::FromABrowser)
        );
    }
}
