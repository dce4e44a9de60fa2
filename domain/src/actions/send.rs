//! `send {to, data}`: `data` to one connection.

use async_trait::async_trait;
use serde_json::value::RawValue;

use super::{ACK, Action, ActionSpec};
use crate::connection::ConnectionId;
use crate::delivery::{DeliveryJob, JobTarget};
use crate::hooks::PublishTarget;
use crate::message::MessageId;
use crate::protocol::ErrorCode;
use crate::protocol::spec::field::DATA;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::service::{Cx, Delivered, Outcome, Refusal, Step};

const TO: FieldSpec =
    FieldSpec::required("to", Kind::ConnectionId, "the recipient's connection id");

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "send",
    doc: "data to one connection; unknown_connection if it is not connected",
    fields: &[TO, DATA],
    answer: ACK,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        Ok(Box::new(Send {
            to: f.connection_id(&TO)?,
            data: f.data(&DATA)?,
        }))
    },
};

#[derive(Debug)]
pub struct Send {
    pub to: ConnectionId,
    pub data: Box<RawValue>,
}

#[async_trait]
impl Action for Send {
    /// A direct message checks the store before posting: the store, not API Gateway, says who is
    /// connected to this service. An id API Gateway still knows but the store has forgotten
    /// (expired, pruned, or never ours) gets nothing, and the sender learns `unknown_connection`
    /// without a post being spent on it.
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let to = &self.to;
        let data = cx
            .on_publish(PublishTarget::Connection(to), self.data)
            .await?;
        let id = MessageId::random();
        let sent_at = cx.clock.now().as_millis();
        let frame = cx.encode(&cx.message(&id, None, None, &data, sent_at))?;
        let unknown = || {
            Refusal::new(
                ErrorCode::UnknownConnection,
                format!("connection {to} is not connected"),
            )
        };
        if cx.repo.get(to, cx.clock.now()).await?.is_none() {
            return Err(unknown().into());
        }
        let job = || DeliveryJob {
            from: Some(cx.sender.id.clone()),
            principal: cx.sender.principal.clone(),
            sent_at: Some(sent_at),
            ..DeliveryJob::new(id.clone(), JobTarget::Connection(to.clone()), data.clone())
        };
        let report = cx.deliver_to(to, &frame, job).await?;
        if report.gone > 0 {
            return Err(unknown().into());
        }
        Ok(Outcome::Done(Delivered {
            queued: report.requeued > 0,
            report,
            seq: None,
        }))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
