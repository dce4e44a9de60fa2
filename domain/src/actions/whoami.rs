//! `whoami`: `identity`, the connection's id and principal.

use async_trait::async_trait;

use super::{Action, ActionSpec};
use crate::protocol::Frame;
use crate::service::{Cx, Outcome, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "whoami",
    doc: "identity: your connection id and principal",
    fields: &[],
    answer: crate::protocol::frames::IDENTITY.name,
    metered: false,
    session: super::SessionNeed::Fresh,
    parse: |_| Ok(Box::new(WhoAmI)),
};

#[derive(Debug)]
pub struct WhoAmI;

#[async_trait]
impl Action for WhoAmI {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let frame = Frame::Identity {
            connection_id: &cx.sender.id,
            principal: cx.sender.principal.as_ref(),
            protocol_version: crate::protocol::PROTOCOL_VERSION,
            expires_at: cx.sender.token_expires_at.map(|at| at.as_millis()),
            request_id: cx.request_id,
        };
        cx.reply(&frame).await;
        Ok(Outcome::Answered)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
