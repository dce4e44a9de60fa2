//! `ping`: `pong`, which keeps the socket past API Gateway's 10-minute idle timeout.

use async_trait::async_trait;

use super::{Action, ActionSpec};
use crate::protocol::Frame;
use crate::service::{Cx, Outcome, Step};

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "ping",
    doc: "pong: keeps the socket past API Gateway's 10-minute idle timeout",
    fields: &[],
    answer: crate::protocol::frames::PONG.name,
    metered: false,
    // Not exempt from expiry: a client that only pings would stay in its rooms, receiving, until
    // API Gateway's 2-hour limit.
    session: super::SessionNeed::Live,
    parse: |_| Ok(Box::new(Ping)),
};

#[derive(Debug)]
pub struct Ping;

#[async_trait]
impl Action for Ping {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        cx.reply(&Frame::Pong {
            request_id: cx.request_id,
        })
        .await;
        Ok(Outcome::Answered)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
