//! The delivery job a `publish` describes, checked before anything is sent.

use domain::delivery::{DeliveryJob, JobTarget, MessageId};
use domain::{ConnectionId, RoomName};
use serde_json::value::RawValue;

use crate::Publish;

/// The job for `publish`; `None` as id leaves the choice to the receiver.
pub fn job(publish: &Publish, id: Option<MessageId>) -> Result<DeliveryJob, String> {
    let target = &publish.target;
    let target = match (&target.room, target.everyone, &target.connection) {
        (Some(room), _, _) => {
            JobTarget::Room(RoomName::parse(room).map_err(|e| format!("--room: {e}"))?)
        }
        (_, _, Some(id)) => JobTarget::Connection(
            ConnectionId::parse(id.clone()).map_err(|e| format!("--connection: {e}"))?,
        ),
        _ => JobTarget::Everyone,
    };
    let data: Box<RawValue> = serde_json::from_str(&data_text(&publish.data)?)
        .map_err(|e| format!("--data is not valid JSON: {e}"))?;
    let mut job = DeliveryJob::new(MessageId::random(), target, data);
    job.id = id;
    // A message whose frame is over API Gateway's limit could never be delivered: refused here,
    // before it is queued, rather than dead-lettered by a worker.
    job.check_frame(domain::protocol::API_GATEWAY_MAX_MESSAGE_BYTES)
        .map_err(|e| format!("the message could never be delivered: {e}"))?;
    Ok(job)
}

/// `--data`'s JSON: the argument itself, or, as curl reads it, the file after an `@`, or standard
/// input for `-` (neither is valid JSON, so nothing is ambiguous). A large message cannot be one
/// argument: Linux caps each at 128 KiB.
fn data_text(argument: &str) -> Result<String, String> {
    if argument == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("--data -: cannot read standard input: {e}"))?;
        Ok(text)
    } else if let Some(path) = argument.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| format!("--data @{path}: {e}"))
    } else {
        Ok(argument.to_owned())
    }
}

/// The id from `--id`, checked.
pub fn chosen_id(publish: &Publish) -> Result<Option<MessageId>, String> {
    publish
        .id
        .clone()
        .map(MessageId::parse)
        .transpose()
        .map_err(|e| format!("--id: {e}"))
}
