//! Rooms: named groups of connections that `publish` reaches.

use std::fmt;

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
