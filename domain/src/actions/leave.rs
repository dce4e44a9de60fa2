//! `leave {room}`: the sender stops being a member; the members who stay hear of it (presence).

use async_trait::async_trait;

use crate::lifecycle::LifecycleKind;

use super::{ACK, Action, ActionSpec};
use crate::fanout::Departure;
use crate::protocol::spec::field::ROOM;
use crate::room::RoomName;
use crate::service::{Cx, Delivered, Outcome, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "leave",
    doc: "leave the room; leaving a room one is not in succeeds",
    fields: &[ROOM],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        Ok(Box::new(Leave {
            room: f.room(&ROOM)?,
        }))
    },
};

#[derive(Debug)]
pub struct Leave {
    pub room: RoomName,
}

#[async_trait]
impl Action for Leave {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let room = &self.room;
        // Only a real departure is announced (presence, a `left` event); the read is skipped when
        // nobody would be told.
        let was_member = (cx.settings.presence_max_members > 0 || cx.events.is_some())
            && cx
                .repo
                .rooms_of(&cx.sender.id, cx.clock.now())
                .await?
                .contains(room);
        cx.repo.leave(&cx.sender.id, room).await?;
        if was_member {
            let left = Departure {
                id: cx.sender.id.clone(),
                principal: cx.sender.principal.clone(),
                rooms: vec![room.clone()],
                found_connection: true,
            };
            cx.fanout().announce_departures(vec![left]).await;
            cx.publish_event(LifecycleKind::Left(room.clone())).await;
        }
        Ok(Outcome::Done(Delivered::default()))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
