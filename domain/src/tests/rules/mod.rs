//! The domain's rules against mockall mocks of the ports, one file per action or concern.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mockall::predicate::eq;
use serde_json::{Value, json};

use super::harness::*;
use crate::ports::{MockClientNotifier, MockConnectionRepository, MockRoomPolicy};
use crate::protocol::ErrorCode;
use crate::{
    ClientNotifier, ConnectRequest, ConnectionId, DeliveryReport, HandleError, Handled, JoinError,
    Joined, NotifyError, Page, PageToken, Removed, RepositoryError, RoomName, Settings, Timestamp,
    WebSocketService,
};
use crate::{Member, MemberPage, MessageId};

mod connect;
mod fanout;
mod hooks;
mod join_leave;
mod members;
mod ping_whoami;
mod presence;
mod publish;
mod requests;
mod send;
mod streams;
mod typing;

pub fn one_page(ids: &[&str]) -> Page<ConnectionId> {
    Page {
        items: ids.iter().map(|s| id(s)).collect(),
        next: None,
    }
}

/// A 410's recipient has no row left to check the age of (it is pruned, or an orphan).
pub fn no_connection_row_to_age(repo: &mut MockConnectionRepository) {
    repo.expect_get().returning(|_, _| Ok(None));
}

pub fn everyone_is(repo: &mut MockConnectionRepository, ids: &'static [&'static str]) {
    repo.expect_all_connections()
        .returning(move |_, _| Ok(one_page(ids)));
}

/// A connection an hour old: well past `$connect`'s grace.
pub fn connection(raw: &str) -> crate::Connection {
    crate::Connection {
        id: id(raw),
        connected_at: Timestamp::from_millis(NOW - 3_600_000),
        expires_at: Timestamp::from_millis(NOW + 1),
        principal: None,
        source_ip: None,
        user_agent: None,
        metadata: None,
        token_expires_at: None,
        reauth_grants: None,
    }
}

/// The room's member list, as presence reads it to count the room and reach its members.
pub fn member_list_is(repo: &mut MockConnectionRepository, ids: &'static [&'static str]) {
    repo.expect_member_list()
        .returning(move |_, _, _, _| Ok(listed(ids)));
}

pub fn listed(ids: &[&str]) -> MemberPage {
    MemberPage {
        members: ids
            .iter()
            .map(|raw| Member {
                id: id(raw),
                principal: None,
            })
            .collect(),
        next: None,
    }
}
