//! A client's connection: who it is, when it opened, when API Gateway will have closed it for sure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::room::RoomGrants;
use crate::time::Timestamp;

/// API Gateway closes every WebSocket after two hours, whatever the client does.
pub const API_GATEWAY_MAX_CONNECTION_DURATION: Duration = Duration::from_secs(2 * 60 * 60);

/// API Gateway waits at most this long for an integration (`$connect` included) to answer.
pub const API_GATEWAY_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// How long after `connected_at` a 410 does not prove a connection gone: API Gateway opens the
/// socket only once `$connect` returns, so until then it answers 410 for a client whose row is
/// already stored. The integration timeout, plus a margin for clock skew between API Gateway
/// (which stamps `connected_at`) and the function reading it.
pub const CONNECT_GRACE: Duration = Duration::from_secs(29 + 5);

/// API Gateway closes a WebSocket that has carried no message for ten minutes.
pub const API_GATEWAY_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The id API Gateway gives a connection (e.g. `L0SM9cOFvHcCIhw=`).
///
/// Always 1 to 128 printable ASCII characters, so it is safe in a log line, a DynamoDB key and, once
/// percent-encoded, a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionIdError {
    #[error("a connection id must not be empty")]
    Empty,
    #[error("a connection id must be at most {max} characters, this one has {len}")]
    TooLong { len: usize, max: usize },
    #[error("a connection id must be printable ASCII without spaces")]
    NotPrintableAscii,
}

impl ConnectionId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: impl Into<String>) -> Result<Self, ConnectionIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(ConnectionIdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ConnectionIdError::TooLong {
                len: raw.len(),
                max: Self::MAX_LEN,
            });
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnectionIdError::NotPrintableAscii);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user an authorizer vouched for on `$connect` (a JWT's `sub`, say).
///
/// Comes only from the request context API Gateway builds, never from a message body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Principal(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("a principal must not be empty")]
    Empty,
    #[error("a principal must be at most {max} bytes, this one has {len}")]
    TooLong { len: usize, max: usize },
    #[error("a principal must not contain control characters")]
    ControlCharacter,
}

impl Principal {
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: impl Into<String>) -> Result<Self, PrincipalError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(PrincipalError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(PrincipalError::TooLong {
                len: raw.len(),
                max: Self::MAX_LEN,
            });
        }
        if raw.chars().any(char::is_control) {
            return Err(PrincipalError::ControlCharacter);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub connected_at: Timestamp,
    /// After this instant API Gateway has closed the socket for sure: storage may forget the row, and
    /// every read treats it as gone.
    pub expires_at: Timestamp,
    pub principal: Option<Principal>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the `on_connect` hook attached (at most [`crate::hooks::MAX_METADATA_BYTES`]).
    pub metadata: Option<String>,
    /// When the token the connection was authorized with expires (the latest `reauth`'s, after
    /// one); `None` without authentication.
    pub token_expires_at: Option<Timestamp>,
    /// The room grants of the latest `reauth`, which replace the authorizer's; `None` before one.
    pub reauth_grants: Option<RoomGrants>,
}

impl Connection {
    /// Whether this connection's `$connect` may still be running at `now` (see
    /// [`CONNECT_GRACE`]): a 410 for it must not delete it.
    pub fn may_still_be_connecting_at(&self, now: Timestamp) -> bool {
        now < self.connected_at.saturating_add(CONNECT_GRACE)
    }

    pub fn is_live_at(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

/// What `$connect` knows about a new connection. Headers and query string are here so a fork can add
/// connect-time rules (an `Origin` check, a protocol version) without touching the adapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub id: ConnectionId,
    pub connected_at: Timestamp,
    pub principal: Option<Principal>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    /// The authorizer's token's `exp`.
    pub token_expires_at: Option<Timestamp>,
}

impl ConnectRequest {
    pub fn new(id: ConnectionId, connected_at: Timestamp) -> Self {
        Self {
            id,
            connected_at,
            principal: None,
            source_ip: None,
            user_agent: None,
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
            token_expires_at: None,
        }
    }
}

/// Who sent a message, as API Gateway's request context says: never as the body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub id: ConnectionId,
    pub principal: Option<Principal>,
    /// The private rooms the authorizer granted on `$connect` (the token's `rooms` claim).
    pub grants: RoomGrants,
    /// When the token of `$connect` expires, as the authorizer said (a `reauth` may have pushed
    /// it later: the connection's row says).
    pub token_expires_at: Option<Timestamp>,
}

impl Sender {
    pub fn new(id: ConnectionId, principal: Option<Principal>) -> Self {
        Self {
            id,
            principal,
            grants: RoomGrants::default(),
            token_expires_at: None,
        }
    }

    pub fn with_grants(self, grants: RoomGrants) -> Self {
        Self { grants, ..self }
    }

    pub fn with_token_expiry(self, token_expires_at: Option<Timestamp>) -> Self {
        Self {
            token_expires_at,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_from_api_gateway_are_accepted() {
        assert_eq!(
            ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap().as_str(),
            "L0SM9cOFvHcCIhw="
        );
    }

    #[test]
    fn connection_ids_that_are_empty_too_long_or_unprintable_are_refused() {
        assert_eq!(ConnectionId::parse(""), Err(ConnectionIdError::Empty));
        assert_eq!(
            ConnectionId::parse("a".repeat(129)),
            Err(ConnectionIdError::TooLong { len: 129, max: 128 })
        );
        assert!(ConnectionId::parse("a".repeat(128)).is_ok());
        assert_eq!(
            ConnectionId::parse("has space"),
            Err(ConnectionIdError::NotPrintableAscii)
        );
        assert_eq!(
            ConnectionId::parse("é"),
            Err(ConnectionIdError::NotPrintableAscii)
        );
        assert_eq!(
            ConnectionId::parse("a\nb"),
            Err(ConnectionIdError::NotPrintableAscii)
        );
    }

    #[test]
    fn principals_refuse_empty_long_and_control_characters() {
        assert!(Principal::parse("user-1").is_ok());
        assert_eq!(Principal::parse(""), Err(PrincipalError::Empty));
        assert!(matches!(
            Principal::parse("x".repeat(257)),
            Err(PrincipalError::TooLong { .. })
        ));
        assert_eq!(
            Principal::parse("a\u{0}b"),
            Err(PrincipalError::ControlCharacter)
        );
    }

    #[test]
    fn a_connection_is_live_until_it_expires() {
        let c = Connection {
            id: ConnectionId::parse("a").unwrap(),
            connected_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(10),
            principal: None,
            source_ip: None,
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        };
        assert!(c.is_live_at(Timestamp::from_millis(9)));
        assert!(!c.is_live_at(Timestamp::from_millis(10)));
    }
}
