//! The id every copy of one published message carries.

use serde::Serialize;

/// Names one published message on every copy of it, redeliveries included, so a client can
/// drop duplicates. Up to 128 characters of `A-Z a-z 0-9 - _ . :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessageId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    #[error("a message id must not be empty")]
    Empty,
    #[error("a message id must be at most {max} characters, this one has {len}")]
    TooLong { len: usize, max: usize },
    #[error("a message id may hold only letters, digits, '-', '_', '.' and ':'")]
    BadCharacter,
}

impl MessageId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: impl Into<String>) -> Result<Self, MessageIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(MessageIdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(MessageIdError::TooLong {
                len: raw.len(),
                max: Self::MAX_LEN,
            });
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if !raw.chars().all(allowed) {
            return Err(MessageIdError::BadCharacter);
        }
        Ok(Self(raw))
    }

    /// The longest id there can be: for sizing a frame before its id is known.
    pub fn longest() -> Self {
        Self("x".repeat(Self::MAX_LEN))
    }

    /// A new id: 128 random bits in hex. Random rather than derived from the sender's request,
    /// whose `requestId` the client chooses (and may repeat).
    pub fn random() -> Self {
        Self(format!("{:032x}", fastrand::u128(..)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
