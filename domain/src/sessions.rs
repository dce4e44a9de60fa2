//! Sessions under the operator's control: a backend disconnects a principal's sockets or one
//! socket, bans a principal for a while, lifts a ban, or forgets a person; a connection's token
//! expires and must be renewed (`reauth`). Every socket the service closes is first told why, with
//! a `closing` frame.
//!
//! The control messages come on the backend queue, beside publishes (docs/deploying.md,
//! "Controlling sessions from a backend"):
//!
//! ```json
//! {"disconnect": {"principal": "alice", "reason": "logged out"}}
//! {"disconnect": {"connection": "L0SM9cOFvHcCIhw="}}
//! {"ban": {"principal": "alice", "seconds": 3600, "reason": "spam"}}
//! {"unban": {"principal": "alice"}}
//! {"forget": {"principal": "alice", "rooms": ["lobby"]}}
//! ```

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::connection::{ConnectionId, Principal};
use crate::ports::RepositoryError;
use crate::protocol::ErrorCode;
use crate::room::RoomName;
use crate::time::Timestamp;

/// Why the service closed a socket: the `closing` frame's `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosingCode {
    Kicked,
    Banned,
    TokenExpired,
}

impl ClosingCode {
    /// The wire names, in declaration order; `token_expired` is the same word as the error a
    /// message after expiry gets.
    pub const WIRE: &[&str] = &[
        "kicked",
        "banned",
        ErrorCode::WIRE[ErrorCode::TokenExpired as usize],
    ];

    pub fn as_str(self) -> &'static str {
        Self::WIRE[self as usize]
    }
}

impl serde::Serialize for ClosingCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A ban on a principal: no new connection until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until: Timestamp,
    pub reason: Option<String>,
}

/// Longest ban a control message may ask: a year (a longer one is an account decision, made by
/// the identity provider).
pub const MAX_BAN: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest reason a control message carries (it reaches the client in the `closing` frame).
pub const MAX_REASON_BYTES: usize = 256;

/// Keeps bans, and forgets what is kept of a principal beyond its connections.
///
/// Every adapter MUST:
/// - answer `ban_of` with the ban until its `until`, and `None` after it, whether or not storage
///   has deleted it yet (DynamoDB's TTL deletes days late, moto never);
/// - make `ban` an upsert (a later ban replaces an earlier one) and `unban` idempotent;
/// - make `forget` remove every item of the principal it keeps (its ban, its rate-limit bucket).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Bans: Send + Sync {
    async fn ban(&self, principal: &Principal, ban: &Ban) -> Result<(), RepositoryError>;
    async fn unban(&self, principal: &Principal) -> Result<(), RepositoryError>;
    async fn ban_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Option<Ban>, RepositoryError>;
    async fn forget(&self, principal: &Principal) -> Result<(), RepositoryError>;
}

/// Who a `disconnect` closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Principal(Principal),
    Connection(ConnectionId),
}

/// A backend's control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Disconnect {
        target: Target,
        reason: Option<String>,
    },
    Ban {
        principal: Principal,
        ban_for: Duration,
        reason: Option<String>,
    },
    Unban {
        principal: Principal,
    },
    /// Disconnects the principal, removes its rows, memberships, bans and bucket, and its kept
    /// messages in `rooms` and in the rooms its connections are in.
    Forget {
        principal: Principal,
        rooms: Vec<RoomName>,
    },
}

/// Why a control message cannot be carried out (dead-lettered with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("not a control message: {0}")]
    Malformed(String),
    #[error("field \"{field}\" is invalid: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectWire {
    principal: Option<String>,
    connection: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanWire {
    principal: String,
    seconds: u64,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnbanWire {
    principal: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetWire {
    principal: String,
    #[serde(default)]
    rooms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    disconnect: Option<DisconnectWire>,
    ban: Option<BanWire>,
    unban: Option<UnbanWire>,
    forget: Option<ForgetWire>,
}

/// The names that make a backend message a control message rather than a publish.
const KEYS: &[&str] = &["disconnect", "ban", "unban", "forget"];

fn principal(field: &'static str, raw: String) -> Result<Principal, ControlError> {
    Principal::parse(raw).map_err(|e| ControlError::Field {
        field,
        problem: e.to_string(),
    })
}

fn reason(raw: Option<String>) -> Result<Option<String>, ControlError> {
    match raw {
        Some(text) if text.len() > MAX_REASON_BYTES || text.chars().any(char::is_control) => {
            Err(ControlError::Field {
                field: "reason",
                problem: format!("at most {MAX_REASON_BYTES} bytes, no control characters"),
            })
        }
        other => Ok(other),
    }
}

impl Control {
    /// Whether a backend's message is a control message (it names one of the controls at its
    /// top level), without reading the rest.
    pub fn is_control(json: &str) -> bool {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
            .is_ok_and(|keys| KEYS.iter().any(|key| keys.contains_key(*key)))
    }

    pub fn from_json(json: &str) -> Result<Self, ControlError> {
        let wire: Wire =
            serde_json::from_str(json).map_err(|e| ControlError::Malformed(e.to_string()))?;
        match (wire.disconnect, wire.ban, wire.unban, wire.forget) {
            (Some(d), None, None, None) => {
                let target = match (d.principal, d.connection) {
                    (Some(p), None) => Target::Principal(principal("principal", p)?),
                    (None, Some(c)) => Target::Connection(ConnectionId::parse(c).map_err(|e| {
                        ControlError::Field {
                            field: "connection",
                            problem: e.to_string(),
                        }
                    })?),
                    _ => {
                        return Err(ControlError::Malformed(
                            "disconnect names exactly one of \"principal\" and \"connection\""
                                .into(),
                        ));
                    }
                };
                Ok(Control::Disconnect {
                    target,
                    reason: reason(d.reason)?,
                })
            }
            (None, Some(b), None, None) => {
                let ban_for = Duration::from_secs(b.seconds);
                if b.seconds == 0 || ban_for > MAX_BAN {
                    return Err(ControlError::Field {
                        field: "seconds",
                        problem: format!("from 1 to {}", MAX_BAN.as_secs()),
                    });
                }
                Ok(Control::Ban {
                    principal: principal("principal", b.principal)?,
                    ban_for,
                    reason: reason(b.reason)?,
                })
            }
            (None, None, Some(u), None) => Ok(Control::Unban {
                principal: principal("principal", u.principal)?,
            }),
            (None, None, None, Some(f)) => Ok(Control::Forget {
                principal: principal("principal", f.principal)?,
                rooms: f
                    .rooms
                    .into_iter()
                    .map(|room| {
                        RoomName::parse(room).map_err(|e| ControlError::Field {
                            field: "rooms",
                            problem: e.to_string(),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            }),
            _ => Err(ControlError::Malformed(
                "a control message holds exactly one of disconnect, ban, unban, forget".into(),
            )),
        }
    }

    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The control message as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Control::Disconnect { target, reason } => {
                let mut inner = match target {
                    Target::Principal(p) => serde_json::json!({"principal": p.as_str()}),
                    Target::Connection(c) => serde_json::json!({"connection": c.as_str()}),
                };
                if let Some(reason) = reason {
                    inner["reason"] = reason.as_str().into();
                }
                serde_json::json!({ "disconnect": inner })
            }
            Control::Ban {
                principal,
                ban_for,
                reason,
            } => {
                let mut inner = serde_json::json!({"principal": principal.as_str(), "seconds": ban_for.as_secs()});
                if let Some(reason) = reason {
                    inner["reason"] = reason.as_str().into();
                }
                serde_json::json!({ "ban": inner })
            }
            Control::Unban { principal } => {
                serde_json::json!({"unban": {"principal": principal.as_str()}})
            }
            Control::Forget { principal, rooms } => serde_json::json!({"forget": {
                "principal": principal.as_str(),
                "rooms": rooms.iter().map(RoomName::as_str).collect::<Vec<_>>(),
            }}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_reads_back_from_its_json() {
        let controls = [
            Control::Disconnect {
                target: Target::Principal(Principal::parse("alice").unwrap()),
                reason: Some("logged out".into()),
            },
            Control::Disconnect {
                target: Target::Connection(ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap()),
                reason: None,
            },
            Control::Ban {
                principal: Principal::parse("alice").unwrap(),
                ban_for: Duration::from_secs(3600),
                reason: None,
            },
            Control::Unban {
                principal: Principal::parse("alice").unwrap(),
            },
            Control::Forget {
                principal: Principal::parse("alice").unwrap(),
                rooms: vec![RoomName::parse("lobby").unwrap()],
            },
        ];
        for control in controls {
            let json = control.to_json();
            assert!(Control::is_control(&json), "{json}");
            assert_eq!(Control::from_json(&json), Ok(control));
        }
        assert!(!Control::is_control(r#"{"room":"lobby","data":1}"#));
    }

    #[test]
    fn a_control_that_is_ambiguous_or_out_of_bounds_is_refused_with_the_field() {
        for json in [
            r#"{"disconnect":{}}"#,
            r#"{"disconnect":{"principal":"a","connection":"b"}}"#,
            r#"{"disconnect":{"principal":"a"},"unban":{"principal":"a"}}"#,
            r#"{"ban":{"principal":"a","seconds":0}}"#,
            r#"{"ban":{"principal":"a","seconds":99999999999}}"#,
            r#"{"ban":{"principal":"a","seconds":60,"reason":"bad\nline"}}"#,
            r#"{"unban":{"principal":""}}"#,
            r#"{"forget":{"principal":"a","rooms":["no spaces"]}}"#,
            r#"{"ban":{"principal":"a","seconds":60,"extra":1}}"#,
        ] {
            assert!(Control::from_json(json).is_err(), "{json}");
        }
    }
}
