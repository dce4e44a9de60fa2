//! The steps of sessions that the service and the worker share: a connection's current session
//! (its token's expiry and grants, after any `reauth`), and closing a socket with a `closing`
//! frame first.

use std::time::Duration;

use crate::connection::{ConnectionId, Principal, Sender};
use crate::fanout::{Departure, FanOut};
use crate::lifecycle::{DisconnectReason, LifecycleEvent, LifecycleEvents, LifecycleKind};
use crate::ports::{ConnectionRepository, NotifyError, RepositoryError};
use crate::protocol::{self, Frame};
use crate::sessions::ClosingCode;
use crate::time::Timestamp;

/// The sender as it stands now: its token's expiry and grants after any `reauth`.
pub(crate) struct Current {
    pub sender: Sender,
    /// Past the token's expiry (and the leeway): only `ping` and `reauth` are still answered.
    pub expired: bool,
}

/// The sender's session at `now`. The event's own expiry (the authorizer's) decides, unless it
/// has passed or `fresh` asks for the row (a `join` needs the latest grants, `whoami` the latest
/// expiry): then the connection's row, which a `reauth` updates, is read (one consistent read).
pub(crate) async fn current(
    repo: &dyn ConnectionRepository,
    sender: &Sender,
    fresh: bool,
    leeway: Duration,
    now: Timestamp,
) -> Result<Current, RepositoryError> {
    let Some(event_expiry) = sender.token_expires_at else {
        return Ok(Current {
            sender: sender.clone(),
            expired: false,
        });
    };
    let mut sender = sender.clone();
    let passed = |expiry: Timestamp| now >= expiry.saturating_add(leeway);
    if (fresh || passed(event_expiry))
        && let Some(row) = repo.get(&sender.id, now).await?
    {
        if let Some(expiry) = row.token_expires_at {
            sender.token_expires_at = Some(expiry.max(event_expiry));
        }
        if let Some(grants) = row.reauth_grants {
            sender.grants = grants;
        }
    }
    let expired = sender.token_expires_at.is_some_and(passed);
    Ok(Current { sender, expired })
}

/// Closes the socket `id`: a `closing` frame, `DELETE @connections/{id}`, its rows and
/// memberships removed (presence announces the departure), a `disconnected` event. A socket that
/// is already gone is only cleaned up. Returns whether it was still connected.
pub(crate) async fn close_socket(
    fanout: &FanOut<'_>,
    events: Option<&dyn LifecycleEvents>,
    id: &ConnectionId,
    code: ClosingCode,
    reason: Option<&str>,
) -> Result<bool, RepositoryError> {
    let frame = Frame::Closing { code, reason };
    if let Ok(bytes) = protocol::encode(&frame, fanout.settings.max_message_bytes) {
        // Best effort: a socket that is gone is still cleaned up.
        let _ = fanout.notifier.send(id, &bytes).await;
    }
    match fanout.notifier.disconnect(id).await {
        Ok(()) | Err(NotifyError::Gone) => {}
        // The socket may still be open: keep its row, and let the caller try again (a control
        // message is redelivered; an expired socket is closed at its next message).
        Err(e) => {
            return Err(RepositoryError::Unavailable(format!(
                "could not close the socket {id}: {e}"
            )));
        }
    }
    let removed = fanout.repo.remove(id).await?;
    let principal: Option<Principal> = removed
        .connection
        .as_ref()
        .and_then(|c| c.principal.clone());
    let was_connected = removed.connection.is_some();
    fanout
        .announce_departures(vec![Departure::of(id, removed)])
        .await;
    if was_connected && let Some(events) = events {
        let reason = match code {
            ClosingCode::Kicked => DisconnectReason::Kicked,
            ClosingCode::Banned => DisconnectReason::Banned,
            ClosingCode::TokenExpired => DisconnectReason::TokenExpired,
        };
        events
            .publish(&LifecycleEvent {
                kind: LifecycleKind::Disconnected(reason),
                connection: id.clone(),
                principal,
                at: fanout.now,
            })
            .await;
    }
    Ok(was_connected)
}
