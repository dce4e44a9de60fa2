//! `join {room, since?}`: the sender becomes a member of the room, if the room policy lets it in
//! and it is in fewer than `max_rooms_per_connection` rooms; the room's other members hear of it
//! (presence). With `since` (the last `seq` the member saw), the `ack` is followed by every
//! message of the room after it, or a `reset`.

use async_trait::async_trait;

use super::{ACK, Action, ActionSpec};
use crate::lifecycle::LifecycleKind;
use crate::ports::{JoinError, Joined, RoomAccess};
use crate::protocol::ErrorCode;
use crate::protocol::spec::field::ROOM;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::room::RoomName;
use crate::service::{Cx, Delivered, Outcome, Refusal, Step};
use crate::stream::Seq;

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "join",
    doc: "join the room (at most MAX_ROOMS_PER_CONNECTION of them: too_many_rooms); the room policy decides who may (forbidden)",
    fields: &[ROOM, SINCE],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Fresh,
    parse: |f| {
        Ok(Box::new(Join {
            room: f.room(&ROOM)?,
            since: f.optional_integer(&SINCE, Seq::MAX)?,
        }))
    },
};

const SINCE: FieldSpec = FieldSpec::optional(
    "since",
    Kind::Integer,
    "the last seq of this room the client saw: after the ack, every later message is replayed (or a reset says it cannot be)",
);

#[derive(Debug)]
pub struct Join {
    pub room: RoomName,
    pub since: Option<Seq>,
}

#[async_trait]
impl Action for Join {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let room = &self.room;
        cx.require_access(room, RoomAccess::Join)?;
        cx.on_join(room).await?;
        let max = cx.settings.max_rooms_per_connection;
        // Where the room's stream starts for a member that asks for no replay: read before the
        // membership exists, so a message published in between is a gap the client fills from
        // history, never one it skips (one read of the room's counter per such join).
        let start = match (self.since, cx.log) {
            (None, Some(log)) => Some(log.latest(room).await?.unwrap_or(0)),
            _ => None,
        };
        match cx.repo.join(&cx.sender.id, room, max, cx.clock.now()).await {
            Ok(joined) => {
                if joined == Joined::Added {
                    cx.fanout()
                        .announce_arrival(room, &cx.sender.id, cx.sender.principal.as_ref())
                        .await;
                    cx.publish_event(LifecycleKind::Joined(room.clone())).await;
                }
                let Some(since) = self.since else {
                    return Ok(Outcome::Done(Delivered {
                        seq: start,
                        ..Delivered::default()
                    }));
                };
                // The ack first, then what the member missed: it is a member already, so nothing
                // published from here on can fall between the two.
                cx.ack(&Delivered::default()).await;
                cx.replay(room, since).await?;
                Ok(Outcome::Answered)
            }
            Err(JoinError::TooManyRooms { max }) => Err(Refusal::new(
                ErrorCode::TooManyRooms,
                format!("a connection may be in at most {max} rooms; leave one first"),
            )
            .into()),
            Err(JoinError::NotConnected) => Err(Refusal::new(
                ErrorCode::UnknownConnection,
                "this connection is not registered (it may have expired): reconnect",
            )
            .into()),
            Err(JoinError::Repository(e)) => Err(e.into()),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
