//! `members {room, cursor?}`: one page of the room's member list, to a member of the room.

use async_trait::async_trait;

use super::{Action, ActionSpec};
use crate::connection::ConnectionId;
use crate::protocol::spec::field::ROOM;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::protocol::{ErrorCode, Frame, ParseError, cursor};
use crate::room::RoomName;
use crate::service::{Cx, MEMBERS_PER_FRAME, Outcome, Step};

const CURSOR: FieldSpec = FieldSpec::optional(
    "cursor",
    Kind::Cursor,
    "the cursor of the previous members frame, for the next page",
);

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "members",
    doc: "one page of at most 100 members in connection-id order, to a member of the room (not_member); send the cursor back for the next page",
    fields: &[ROOM, CURSOR],
    answer: crate::protocol::frames::MEMBERS.name,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        let room = f.room(&ROOM)?;
        let cursor = f.optional_cursor(&CURSOR, &room)?;
        let cursor = cursor.map(ConnectionId::parse).transpose().map_err(|_| {
            ParseError::new(
                ErrorCode::InvalidField,
                "cursor: not one this room's members frame could have sent",
            )
        })?;
        Ok(Box::new(Members { room, cursor }))
    },
};

#[derive(Debug)]
pub struct Members {
    pub room: RoomName,
    pub cursor: Option<ConnectionId>,
}

#[async_trait]
impl Action for Members {
    /// The `members` frame is the answer (it carries the `requestId`), so no `ack` follows.
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let Members { room, cursor } = *self;
        cx.require_member(&room).await?;
        let page = cx
            .repo
            .member_list(&room, cursor, MEMBERS_PER_FRAME, cx.clock.now())
            .await?;
        let next = page
            .next
            .as_ref()
            .map(|after| cursor::encode(&room, after.as_str()));
        let frame = Frame::Members {
            room: &room,
            members: &page.members,
            count: page.members.len(),
            cursor: next.as_deref(),
            request_id: cx.request_id,
        };
        cx.reply(&frame).await;
        Ok(Outcome::Answered)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
