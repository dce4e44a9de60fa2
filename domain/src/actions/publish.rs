//! `publish {room, data}`: `data` to the room's members; the sender must be one, allowed to
//! speak there.

use async_trait::async_trait;
use serde_json::value::RawValue;

use super::{ACK, Action, ActionSpec};
use crate::delivery::JobTarget;
use crate::hooks::PublishTarget;
use crate::ports::RoomAccess;
use crate::protocol::spec::field::{DATA, ROOM};
use crate::room::RoomName;
use crate::service::{Cx, Outcome, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "publish",
    doc: "data to the room's members; the sender must be one (not_member) allowed to speak there (forbidden)",
    fields: &[ROOM, DATA],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        Ok(Box::new(Publish {
            room: f.room(&ROOM)?,
            data: f.data(&DATA)?,
        }))
    },
};

#[derive(Debug)]
pub struct Publish {
    pub room: RoomName,
    pub data: Box<RawValue>,
}

#[async_trait]
impl Action for Publish {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        cx.require_access(&self.room, RoomAccess::Publish)?;
        cx.require_member(&self.room).await?;
        let data = cx
            .on_publish(PublishTarget::Room(&self.room), self.data)
            .await?;
        cx.deliver(JobTarget::Room(self.room), &data).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
