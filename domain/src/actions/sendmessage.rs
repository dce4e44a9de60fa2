//! `sendmessage {data}`: `data` to every live connection (the name AWS's
//! simple-websockets-chat-app uses).

use async_trait::async_trait;
use serde_json::value::RawValue;

use super::{ACK, Action, ActionSpec};
use crate::delivery::JobTarget;
use crate::hooks::PublishTarget;
use crate::protocol::spec::field::DATA;
use crate::service::{Cx, Outcome, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "sendmessage",
    doc: "data to every live connection",
    fields: &[DATA],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        Ok(Box::new(SendMessage {
            data: f.data(&DATA)?,
        }))
    },
};

#[derive(Debug)]
pub struct SendMessage {
    pub data: Box<RawValue>,
}

#[async_trait]
impl Action for SendMessage {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let data = cx.on_publish(PublishTarget::Everyone, self.data).await?;
        cx.deliver(JobTarget::Everyone, &data).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
