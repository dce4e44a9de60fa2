//! Rooms: named groups of connections that `publish` reaches.

use std::fmt;

use sha2::Digest;

use crate::connection::Principal;

/// 1 to 64 characters of `[A-Za-z0-9_.:-]`: safe as a DynamoDB key part and in a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("a room name must not be empty")]
    Empty,
    #[error("a room name must be at most {max} characters")]
    TooLong { max: usize },
    #[error("a room name may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-'")]
    BadCharacter,
}

impl RoomName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: impl Into<String>) -> Result<Self, RoomNameError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(RoomNameError::TooLong { max: Self::MAX_LEN });
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        if !raw.bytes().all(allowed) {
            return Err(RoomNameError::BadCharacter);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of a principal's private inbox room.
pub const INBOX_PREFIX: &str = "user:";

/// What marks an inbox named by its principal's hash, not by the principal itself.
pub const HASHED_INBOX_MARK: &str = "x.";

impl RoomName {
    /// The private inbox of `principal`, one room per principal whatever its subject looks like:
    /// `user:{principal}` when that is a room name (`user:alice`, `user:auth0:64b1`), otherwise
    /// `user:x.` and the SHA-256 of the principal in lower-case base32 without padding (52
    /// characters: e-mail addresses, `auth0|...`, non-ASCII or long subjects). A principal that
    /// itself starts with `x.` is always hashed, so no principal's plain inbox can be another's
    /// hashed one.
    pub fn inbox_of(principal: &Principal) -> RoomName {
        let plain = format!("{INBOX_PREFIX}{principal}");
        if !principal.as_str().starts_with(HASHED_INBOX_MARK)
            && let Ok(room) = RoomName::parse(plain)
        {
            return room;
        }
        let digest = sha2::Sha256::digest(principal.as_str().as_bytes());
        RoomName(format!(
            "{INBOX_PREFIX}{HASHED_INBOX_MARK}{}",
            base32_lower(&digest)
        ))
    }

    /// Whether this is some principal's inbox (`user:...`).
    pub fn is_inbox(&self) -> bool {
        self.0.starts_with(INBOX_PREFIX)
    }
}

/// RFC 4648 base32, lower case, no padding: room names allow only `[A-Za-z0-9_.:-]`.
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A room member as the member list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    #[serde(rename = "connectionId")]
    pub id: crate::connection::ConnectionId,
    pub principal: Option<crate::connection::Principal>,
}

/// Rooms a connection may enter beyond the open ones: exact names (`team-42:general`) or whole
/// namespaces (`team-42:*`). Travels from the authorizer to every event as one
/// comma-separated string, since API Gateway's authorizer context holds only strings, numbers and
/// booleans (8 KB in all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomGrants(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomGrantsError {
    #[error("room grants must fit in {max} bytes once joined with commas, these take {len}")]
    TooLong { len: usize, max: usize },
    #[error("{0:?} is not a room name or a namespace wildcard such as `team-42:*`")]
    BadPattern(String),
}

impl RoomGrants {
    /// Most bytes the encoded grants may take: a quarter of the authorizer context's 8 KB, leaving
    /// room for the principal and whatever a fork adds.
    pub const MAX_ENCODED_LEN: usize = 2048;

    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, RoomGrantsError> {
        let mut grants = Vec::new();
        for pattern in patterns {
            let pattern = pattern.trim();
            if pattern.is_empty() {
                continue;
            }
            // A wildcard covers one whole namespace (`team-42:*`), never a bare prefix: `team-42*`
            // would also cover `team-420:x`, and `*` every private room there is.
            let name = match pattern.strip_suffix('*') {
                Some(namespace) if namespace.ends_with(':') && namespace.len() > 1 => namespace,
                Some(_) => return Err(RoomGrantsError::BadPattern(pattern.to_string())),
                None => pattern,
            };
            if RoomName::parse(name).is_err() {
                return Err(RoomGrantsError::BadPattern(pattern.to_string()));
            }
            grants.push(pattern.to_string());
        }
        let grants = Self(grants);
        let len = grants.encode().len();
        if len > Self::MAX_ENCODED_LEN {
            return Err(RoomGrantsError::TooLong {
                len,
                max: Self::MAX_ENCODED_LEN,
            });
        }
        Ok(grants)
    }

    /// The comma-separated form the authorizer context carries.
    pub fn decode(encoded: &str) -> Result<Self, RoomGrantsError> {
        Self::parse(encoded.split(','))
    }

    pub fn encode(&self) -> String {
        self.0.join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any grant names `room` exactly or is a prefix of it.
    pub fn cover(&self, room: &RoomName) -> bool {
        self.0.iter().any(|grant| match grant.strip_suffix('*') {
            Some(prefix) => room.as_str().starts_with(prefix),
            None => grant == room.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_allow_the_documented_alphabet() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("team_1.ops:eu-west").is_ok());
        assert!(RoomName::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn room_names_refuse_empty_long_and_other_characters() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(
            RoomName::parse("x".repeat(65)),
            Err(RoomNameError::TooLong { max: 64 })
        );
        for bad in ["a b", "a/b", "a#b", "ü", "a\u{0}"] {
            assert_eq!(
                RoomName::parse(bad),
                Err(RoomNameError::BadCharacter),
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod inbox_tests {
    use super::*;

    fn inbox(principal: &str) -> String {
        RoomName::inbox_of(&Principal::parse(principal).unwrap()).to_string()
    }

    #[test]
    fn every_principal_has_exactly_one_inbox_the_vectors_computed_elsewhere_agree_on() {
        let text = include_str!("../../clients/js/test/inbox-vectors.json");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = vectors["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 10);
        for vector in vectors {
            let principal = vector["principal"].as_str().unwrap();
            assert_eq!(inbox(principal), vector["inbox"], "{principal}");
        }
    }

    #[test]
    fn auth0_email_non_ascii_and_long_subjects_get_a_hashed_inbox_that_is_a_room_name() {
        for subject in [
            "auth0|64b1f0c2e4a9",
            "alice@example.com",
            "渡辺 翔",
            &"é".repeat(100),
        ] {
            let room = inbox(subject);
            assert!(room.starts_with("user:x."), "{subject}: {room}");
            assert_eq!(room.len(), "user:x.".len() + 52, "{room}");
            assert!(RoomName::parse(room.clone()).is_ok(), "{room}");
        }
    }

    #[test]
    fn a_principal_that_looks_like_a_hashed_inbox_is_hashed_itself() {
        let hashed_alice = inbox("alice@example.com");
        let pretender = hashed_alice.strip_prefix("user:").unwrap();
        assert_ne!(inbox(pretender), hashed_alice);
        assert!(inbox("x.anything").starts_with("user:x."));
    }
}

#[cfg(test)]
mod grant_tests {
    use super::*;
    use crate::testing::room;

    #[test]
    fn grants_cover_exact_names_and_star_prefixes_only() {
        let grants = RoomGrants::decode("team-42:*, lobby-vip").unwrap();
        assert!(grants.cover(&room("team-42:general")));
        assert!(grants.cover(&room("lobby-vip")));
        assert!(!grants.cover(&room("team-43:general")));
        assert!(!grants.cover(&room("lobby-vip2")));
        assert_eq!(grants.encode(), "team-42:*,lobby-vip");
    }

    #[test]
    fn grants_refuse_a_bare_star_bad_characters_and_more_than_the_context_can_carry() {
        assert!(matches!(
            RoomGrants::decode("*"),
            Err(RoomGrantsError::BadPattern(_))
        ));
        for bad in ["a b", "team-42*", ":*", "t*"] {
            assert!(
                matches!(RoomGrants::decode(bad), Err(RoomGrantsError::BadPattern(_))),
                "{bad}"
            );
        }
        let many: Vec<String> = (0..300).map(|i| format!("room-{i:04}")).collect();
        assert!(matches!(
            RoomGrants::parse(many.iter().map(String::as_str)),
            Err(RoomGrantsError::TooLong { .. })
        ));
        assert_eq!(RoomGrants::decode(""), Ok(RoomGrants::default()));
    }
}
