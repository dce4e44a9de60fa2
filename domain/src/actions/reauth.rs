//! `reauth {token}`: a connection renews its session before its token expires. The token is
//! checked as the authorizer checks one (same keys, issuer, audience, algorithms) and must name
//! the connection's own principal; its expiry and room grants replace the connection's, and the
//! rooms the new grants no longer cover are left (their members hear of it).

use async_trait::async_trait;

use super::{ACK, Action, ActionSpec, SessionNeed};
use crate::connection::Sender;
use crate::fanout::Departure;
use crate::lifecycle::LifecycleKind;
use crate::ports::RoomAccess;
use crate::protocol::ErrorCode;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::service::{Cx, Delivered, Outcome, Refusal, Step};

const TOKEN: FieldSpec = FieldSpec::required(
    "token",
    Kind::Token,
    "a fresh token for the same principal, as the authorizer accepts them",
);

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "reauth",
    doc: "renew the session with a fresh token for the same principal before the current one expires; reauth_refused if it does not check out",
    fields: &[TOKEN],
    answer: ACK,
    metered: true,
    session: SessionNeed::Any,
    parse: |f| {
        Ok(Box::new(Reauth {
            token: f.text_field(&TOKEN)?,
        }))
    },
};

pub struct Reauth {
    pub token: String,
}

/// Never print the token.
impl std::fmt::Debug for Reauth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reauth { token: <redacted> }")
    }
}

fn refused(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::ReauthRefused, message)
}

#[async_trait]
impl Action for Reauth {
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let (Some(verifier), Some(principal)) = (cx.verifier, cx.sender.principal.as_ref()) else {
            return Err(refused("this connection was not opened with a token").into());
        };
        let identity = verifier
            .verify(&self.token)
            .await
            .map_err(|e| refused(format!("the token does not check out ({})", e.kind())))?;
        if &identity.principal != principal {
            return Err(refused("the token names another principal").into());
        }
        if let Some(bans) = cx.bans
            && bans.ban_of(principal, cx.clock.now()).await?.is_some()
        {
            return Err(refused("this principal is banned").into());
        }
        let Some(expires_at) = identity.expires_at else {
            return Err(refused("the token has no expiry").into());
        };
        cx.repo
            .reauth(&cx.sender.id, expires_at, &identity.grants)
            .await?;
        // The rooms the new grants no longer let the connection into are left, with presence.
        let renewed = Sender {
            grants: identity.grants,
            token_expires_at: Some(expires_at),
            ..cx.sender.clone()
        };
        let rooms = cx.repo.rooms_of(&cx.sender.id, cx.clock.now()).await?;
        let lost: Vec<_> = rooms
            .into_iter()
            .filter(|room| !cx.policy.allows(&renewed, room, RoomAccess::Join))
            .collect();
        for room in &lost {
            cx.repo.leave(&cx.sender.id, room).await?;
            cx.publish_event(LifecycleKind::Left(room.clone())).await;
        }
        if !lost.is_empty() {
            let departure = Departure {
                id: cx.sender.id.clone(),
                principal: cx.sender.principal.clone(),
                rooms: lost,
                found_connection: true,
            };
            cx.fanout().announce_departures(vec![departure]).await;
        }
        Ok(Outcome::Done(Delivered::default()))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
