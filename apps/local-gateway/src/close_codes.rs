//! How a socket ends, and the close code that says why (RFC 6455 section 7.4.1), as API Gateway
//! reports it to the client and in `$disconnect`'s `disconnectStatusCode`.

use tungstenite::error::ProtocolError;

use crate::outbox::Close;

pub(crate) const GOING_AWAY: Close = (1001, "Going away");
pub(crate) const PROTOCOL_ERROR: Close = (1002, "Protocol error");
pub(crate) const BINARY_NOT_SUPPORTED: Close = (1003, "Binary frames are not supported");
pub(crate) const INVALID_PAYLOAD: Close = (1007, "Invalid frame payload data");
pub(crate) const MESSAGE_TOO_BIG: Close = (1009, "Message too big");
pub(crate) const INTERNAL_ERROR: Close = (1011, "Internal error");
/// Not a code any frame carries: the connection ended without a close handshake.
pub(crate) const ABNORMAL: Close = (1006, "Connection closed abnormally");

/// Why a socket's read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A close frame goes (or went) from the gateway with this code; the client has a few
    /// seconds to answer it.
    Closing(Close),
    /// The client sent a close frame with this code (1005 when it had none); the library
    /// answers it.
    ClientClosed(u16),
    /// The connection died with no close handshake: nothing can be sent.
    Dropped,
}

impl Ending {
    /// The code and reason `$disconnect` reports.
    pub fn disconnect_status(self) -> Close {
        match self {
            Self::Closing(close) => close,
            Self::ClientClosed(code) => (code, "Client closed the connection"),
            Self::Dropped => ABNORMAL,
        }
    }
}

/// The ending a read error calls for: each kind of error has its own code, and only a live
/// connection gets a close frame.
pub(crate) fn ending_for(error: axum::Error) -> Ending {
    let error = match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => *error,
        Err(_) => return Ending::Closing(INTERNAL_ERROR),
    };
    match error {
        tungstenite::Error::Capacity(_) => Ending::Closing(MESSAGE_TOO_BIG),
        tungstenite::Error::Utf8(_) => Ending::Closing(INVALID_PAYLOAD),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | tungstenite::Error::Io(_)
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed => Ending::Dropped,
        tungstenite::Error::Protocol(_) | tungstenite::Error::AttackAttempt => {
            Ending::Closing(PROTOCOL_ERROR)
        }
        _ => Ending::Closing(INTERNAL_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::CapacityError;

    fn ending(error: tungstenite::Error) -> Ending {
        ending_for(axum::Error::new(error))
    }

    #[test]
    fn each_read_error_gets_the_code_that_says_what_happened() {
        let too_long = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(
            ending(tungstenite::Error::Capacity(too_long)),
            Ending::Closing(MESSAGE_TOO_BIG)
        );
        assert_eq!(
            ending(tungstenite::Error::Utf8("bad".into())),
            Ending::Closing(INVALID_PAYLOAD)
        );
        assert_eq!(
            ending(ProtocolError::UnexpectedContinueFrame.into()),
            Ending::Closing(PROTOCOL_ERROR)
        );
        assert_eq!(
            ending(ProtocolError::ResetWithoutClosingHandshake.into()),
            Ending::Dropped
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ending(reset.into()), Ending::Dropped);
    }

    #[test]
    fn a_dropped_connection_reports_1006() {
        assert_eq!(Ending::Dropped.disconnect_status().0, 1006);
        assert_eq!(Ending::ClientClosed(4000).disconnect_status().0, 4000);
    }
}
