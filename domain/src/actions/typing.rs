//! `typing {room}`: a `typing` frame to the room's other members, never to the typist; nothing is
//! stored.

use async_trait::async_trait;

use super::{ACK, Action, ActionSpec};
use crate::fanout::Audience;
use crate::ports::RoomAccess;
use crate::protocol::spec::field::ROOM;
use crate::protocol::{ErrorCode, Frame};
use crate::room::RoomName;
use crate::service::{Cx, Delivered, Outcome, Refusal, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "typing",
    doc: "a typing frame to the room's other members, never to the sender; the sender must be a member (not_member) allowed to speak there (forbidden); nothing is stored",
    fields: &[ROOM],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        Ok(Box::new(Typing {
            room: f.room(&ROOM)?,
        }))
    },
};

#[derive(Debug)]
pub struct Typing {
    pub room: RoomName,
}

#[async_trait]
impl Action for Typing {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        if !cx.settings.typing {
            return Err(Refusal::new(
                ErrorCode::UnknownAction,
                "typing is switched off on this service",
            )
            .into());
        }
        let room = &self.room;
        // Typing is speaking: a room the policy makes read-only gets no typing either.
        cx.require_access(room, RoomAccess::Publish)?;
        cx.require_member(room).await?;
        let frame = cx.encode(&Frame::Typing {
            from: &cx.sender.id,
            principal: cx.sender.principal.as_ref(),
            room,
        })?;
        // Never echoed, whatever `echo_to_sender` says: the typist knows they are typing. Always
        // inline: an ephemeral hint is not worth a queue hop.
        let report = cx
            .fanout()
            .broadcast(Audience::Room(room), &frame, Some(&cx.sender.id))
            .await?;
        Ok(Outcome::Done(Delivered::inline(report)))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
