use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, PutRequest, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use domain::{
    Connection, ConnectionId, ConnectionRepository, JoinError, Joined, MemberPage, Page, PageToken,
    Principal, RateLimit, Removed, RepositoryError, RoomName, Timestamp, TokenDecision,
};

use super::batch::{self, MAX_ROUNDS, pause};

/// Pages of a principal's index entries `connections_of` reads at most (100 entries a page,
/// expired ones included until their TTL).
const CONNECTIONS_OF_MAX_PAGES: usize = 1_000;
use super::codec::{
    self, CONNECTED_AT, EXPIRES_AT, Item, LIST_PK, LIST_SK, PK, PRINCIPAL, ROOMS, TTL,
    number_value, string_value,
};
use super::errors::repository_error;

#[derive(Debug, Clone)]
pub struct DynamoSettings {
    pub table: String,
    /// `Limit` of each Query page.
    pub page_size: i32,
    /// Listing partitions for `all_connections`; raise past ~1 000 connects/s (see module docs).
    pub list_shards: u16,
}

impl DynamoSettings {
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            page_size: 500,
            list_shards: 1,
        }
    }
}

/// A connection to store with `save_many`, and the rooms it is in.
#[derive(Debug, Clone)]
pub struct Seed {
    pub connection: Connection,
    pub rooms: Vec<RoomName>,
}

impl From<Connection> for Seed {
    fn from(connection: Connection) -> Self {
        Self {
            connection,
            rooms: Vec::new(),
        }
    }
}

pub struct DynamoConnectionRepository {
    client: Client,
    settings: DynamoSettings,
}

impl DynamoConnectionRepository {
    pub fn new(client: Client, settings: DynamoSettings) -> Self {
        Self { client, settings }
    }

    fn table(&self) -> &str {
        &self.settings.table
    }

    /// Deletes the connection row and nothing else: what `remove` leaves behind when its
    /// membership batch fails after the row is gone. For the tests of orphan pruning (the
    /// in-memory store has the same hook), never called by the service.
    pub async fn delete_connection_row_only(
        &self,
        id: &ConnectionId,
    ) -> Result<(), RepositoryError> {
        self.client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(id)))
            .send()
            .await
            .map_err(repository_error)?;
        Ok(())
    }

    async fn item(&self, id: &ConnectionId) -> Result<Option<Item>, RepositoryError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(repository_error)?;
        Ok(out.item)
    }

    async fn live_item(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Item>, RepositoryError> {
        match self.item(id).await? {
            Some(item) if codec::expires_at(&item)? > now => Ok(Some(item)),
            _ => Ok(None),
        }
    }

    /// A conditional update of the connection's `rooms` set, with `room` bound to `:room`.
    fn rooms_set_update(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        update: String,
        condition: String,
    ) -> UpdateBuilder {
        Update::builder()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(id)))
            .set_expression_attribute_names(Some(codec::names_in(&[&update, &condition])))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.to_string()]))
    }

    /// Deletes membership items 25 at a time, resending what DynamoDB leaves unprocessed.
    async fn delete_memberships(
        &self,
        id: &ConnectionId,
        rooms: &[RoomName],
    ) -> Result<(), RepositoryError> {
        let requests = rooms
            .iter()
            .map(|room| {
                let delete = build(
                    DeleteRequest::builder()
                        .set_key(Some(codec::membership_key(id, room)))
                        .build(),
                )?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, RepositoryError>>()?;
        batch::write_all(&self.client, self.table(), requests, "membership deletes").await
    }

    /// Stores many connections, each with its room memberships, with `BatchWriteItem`, 25 items
    /// a call: for seeding a table (load tests, fixtures, migrations), where `save` and `join`
    /// would cost a call, or a transaction, each. Items are put whole, so an existing row is
    /// replaced, its rooms included; the room limit is the caller's to respect.
    pub async fn save_many(&self, seeds: &[Seed]) -> Result<(), RepositoryError> {
        let put = |item: Item| -> Result<WriteRequest, RepositoryError> {
            let put = build(PutRequest::builder().set_item(Some(item)).build())?;
            Ok(WriteRequest::builder().put_request(put).build())
        };
        let mut requests = Vec::new();
        for Seed { connection, rooms } in seeds {
            let shards = self.settings.list_shards;
            requests.push(put(codec::connection_item(connection, shards, rooms))?);
            for room in rooms {
                let membership =
                    codec::membership_item(&connection.id, room, connection.expires_at);
                requests.push(put(membership)?);
            }
        }
        batch::write_all(&self.client, self.table(), requests, "seeded items").await
    }

    async fn query_page(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: HashMap<String, AttributeValue>,
        start: Option<Item>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), RepositoryError> {
        let live = format!("#{EXPIRES_AT} > :now");
        let out = self
            .client
            .query()
            .table_name(self.table())
            .set_index_name(index.map(str::to_string))
            .set_expression_attribute_names(Some(codec::names_in(&[key_condition, &live])))
            // The base table reads consistently, so a member who joined a moment ago gets the
            // next publish (the membership check reads consistently too). A GSI cannot.
            .consistent_read(index.is_none())
            .key_condition_expression(key_condition)
            .filter_expression(live)
            .set_expression_attribute_values(Some(values))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(repository_error)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, RepositoryError> {
    built.map_err(|e| RepositoryError::Unavailable(format!("could not build a request: {e}")))
}

#[async_trait]
impl ConnectionRepository for DynamoConnectionRepository {
    async fn save(&self, c: &Connection) -> Result<(), RepositoryError> {
        // An upsert that leaves `rooms` alone: a retried `$connect` must not forget memberships.
        let mut set = vec![
            format!("#{CONNECTED_AT} = :c"),
            format!("#{EXPIRES_AT} = :e"),
            format!("#{TTL} = :t"),
            format!("#{LIST_PK} = :lpk"),
            format!("#{LIST_SK} = :lsk"),
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (":c".to_string(), number_value(c.connected_at.as_millis())),
            (":e".to_string(), number_value(c.expires_at.as_millis())),
            (":t".to_string(), number_value(c.expires_at.as_secs_ceil())),
            (
                ":lpk".to_string(),
                string_value(codec::list_pk(codec::shard_of(
                    &c.id,
                    self.settings.list_shards,
                ))),
            ),
            (":lsk".to_string(), string_value(c.id.as_str())),
        ]);
        let optional = [
            (
                codec::PRINCIPAL,
                ":p",
                c.principal.as_ref().map(|p| p.as_str()),
            ),
            (codec::SOURCE_IP, ":ip", c.source_ip.as_deref()),
            (codec::USER_AGENT, ":ua", c.user_agent.as_deref()),
            (codec::METADATA, ":md", c.metadata.as_deref()),
        ];
        for (attr, placeholder, value) in optional {
            match value {
                Some(v) => {
                    set.push(format!("#{attr} = {placeholder}"));
                    values.insert(placeholder.to_string(), string_value(v));
                }
                None => remove.push(format!("#{attr}")),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        self.client
            .update_item()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(&c.id)))
            .set_expression_attribute_names(Some(codec::names_in(&[&expression])))
            .update_expression(expression)
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(repository_error)?;
        if let Some(principal) = &c.principal {
            // The principal's index entry expires with the connection.
            let mut entry = codec::principal_connection_key(principal, &c.id);
            entry.insert(EXPIRES_AT.into(), number_value(c.expires_at.as_millis()));
            entry.insert(TTL.into(), number_value(c.expires_at.as_secs_ceil()));
            self.client
                .put_item()
                .table_name(self.table())
                .set_item(Some(entry))
                .send()
                .await
                .map_err(repository_error)?;
        }
        Ok(())
    }

    async fn remove(&self, id: &ConnectionId) -> Result<Removed, RepositoryError> {
        // Deleting the connection first closes the door: from here on every join fails its
        // condition, so the room set returned is complete.
        let out = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(repository_error)?;
        let Some(old) = out.attributes else {
            return Ok(Removed::default());
        };
        let rooms = codec::rooms_from(&old);
        self.delete_memberships(id, &rooms).await?;
        if let Some(principal) = codec::principal_of(&old).and_then(|p| Principal::parse(p).ok()) {
            self.client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(codec::principal_connection_key(&principal, id)))
                .send()
                .await
                .map_err(repository_error)?;
        }
        Ok(Removed {
            connection: codec::connection_from(&old).ok(),
            rooms,
        })
    }

    async fn get(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError> {
        self.live_item(id, now)
            .await?
            .map(|item| codec::connection_from(&item))
            .transpose()
    }

    async fn join(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        max_rooms: usize,
        now: Timestamp,
    ) -> Result<Joined, JoinError> {
        for round in 1..=MAX_ROUNDS {
            let Some(item) = self.live_item(id, now).await? else {
                return Err(JoinError::NotConnected);
            };
            let rooms = codec::rooms_from(&item);
            if rooms.contains(room) {
                return Ok(Joined::AlreadyMember);
            }
            if rooms.len() >= max_rooms {
                return Err(JoinError::TooManyRooms { max: max_rooms });
            }
            let expires_at = codec::expires_at(&item)?;
            let update = format!("ADD #{ROOMS} :room");
            let condition = format!(
                "attribute_exists(#{PK}) AND #{EXPIRES_AT} > :now AND (attribute_not_exists(#{ROOMS}) \
                 OR size(#{ROOMS}) < :max OR contains(#{ROOMS}, :name))"
            );
            let add_room = build(
                self.rooms_set_update(id, room, update, condition)
                    .expression_attribute_values(":name", string_value(room.as_str()))
                    .expression_attribute_values(":now", number_value(now.as_millis()))
                    .expression_attribute_values(":max", number_value(max_rooms as u64))
                    .build(),
            )?;
            let mut membership = codec::membership_key(id, room);
            membership.insert(EXPIRES_AT.into(), number_value(expires_at.as_millis()));
            if let Some(principal) = codec::principal_of(&item) {
                membership.insert(PRINCIPAL.into(), string_value(principal));
            }
            membership.insert(TTL.into(), number_value(expires_at.as_secs_ceil()));
            let put = build(
                Put::builder()
                    .table_name(self.table())
                    .set_item(Some(membership))
                    .build(),
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(add_room).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Joined::Added),
                // A failed condition or a conflicting transaction: read again and decide.
                Err(e) if is_cancelled(&e) => pause(round).await,
                Err(e) => return Err(repository_error(e).into()),
            }
        }
        Err(RepositoryError::Throttled(format!(
            "join kept conflicting with other writes for {MAX_ROUNDS} rounds"
        ))
        .into())
    }

    async fn leave(&self, id: &ConnectionId, room: &RoomName) -> Result<(), RepositoryError> {
        for round in 1..=MAX_ROUNDS {
            let delete = build(
                Delete::builder()
                    .table_name(self.table())
                    .set_key(Some(codec::membership_key(id, room)))
                    .build(),
            )?;
            let update = format!("DELETE #{ROOMS} :room");
            // Without this the update would create a stub item for a removed connection.
            let condition = format!("attribute_exists(#{PK})");
            let drop_room = build(self.rooms_set_update(id, room, update, condition).build())?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(delete).build())
                .transact_items(TransactWriteItem::builder().update(drop_room).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_cancelled(&e) => {
                    if self.item(id).await?.is_none() {
                        // The connection is gone: only a stray membership could be left.
                        self.client
                            .delete_item()
                            .table_name(self.table())
                            .set_key(Some(codec::membership_key(id, room)))
                            .send()
                            .await
                            .map_err(repository_error)?;
                        return Ok(());
                    }
                    pause(round).await;
                }
                Err(e) => return Err(repository_error(e)),
            }
        }
        Err(RepositoryError::Throttled(format!(
            "leave kept conflicting with other writes for {MAX_ROUNDS} rounds"
        )))
    }

    async fn rooms_of(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError> {
        Ok(self
            .live_item(id, now)
            .await?
            .map(|item| codec::rooms_from(&item))
            .unwrap_or_default())
    }

    async fn members_of(
        &self,
        room: &RoomName,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        let start = page
            .map(|t| codec::decode_token(&t))
            .transpose()?
            .and_then(|(_, key)| key);
        let (items, last) = self
            .query_page(
                None,
                &codec::MEMBERS_OF_ROOM,
                codec::members_of_room_values(room, now),
                start,
                self.settings.page_size,
            )
            .await?;
        Ok(Page {
            items: items
                .iter()
                .map(codec::id_from_member)
                .collect::<Result<_, _>>()?,
            next: last.map(|key| codec::encode_token(0, &key)).transpose()?,
        })
    }

    async fn member_list(
        &self,
        room: &RoomName,
        after: Option<ConnectionId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<MemberPage, RepositoryError> {
        // The cursor is a connection id, so a client can only ever resume inside this room.
        let start = after.map(|id| codec::membership_key(&id, room));
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        let values = codec::members_of_room_values(room, now);
        let (items, last) = self
            .query_page(None, &codec::MEMBERS_OF_ROOM, values, start, limit)
            .await?;
        Ok(MemberPage {
            members: items
                .iter()
                .map(codec::member_from)
                .collect::<Result<_, _>>()?,
            next: last.as_ref().map(codec::id_from_member).transpose()?,
        })
    }

    async fn all_connections(
        &self,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        let (shard, start) = match page {
            Some(token) => codec::decode_token(&token)?,
            None => (0, None),
        };
        let values = HashMap::from([
            (":lpk".to_string(), string_value(codec::list_pk(shard))),
            (":now".to_string(), number_value(now.as_millis())),
        ]);
        let (items, last) = self
            .query_page(
                Some(codec::LIST_INDEX),
                &format!("#{LIST_PK} = :lpk"),
                values,
                start,
                self.settings.page_size,
            )
            .await?;
        let next = match last {
            Some(key) => Some(codec::encode_token(shard, &key)?),
            // This shard is done; the next one starts from its beginning.
            None if shard + 1 < self.settings.list_shards => {
                Some(codec::encode_token(shard + 1, &HashMap::new())?)
            }
            None => None,
        };
        Ok(Page {
            items: items
                .iter()
                .map(codec::id_from_listing)
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        let owner = super::rate_limit::Owner::Connection(id);
        super::rate_limit::take_token(&self.client, self.table(), owner, limit, now).await
    }

    async fn take_principal_token(
        &self,
        principal: &domain::Principal,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        let owner = super::rate_limit::Owner::Principal(principal);
        super::rate_limit::take_token(&self.client, self.table(), owner, limit, now).await
    }
    async fn connections_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Vec<ConnectionId>, RepositoryError> {
        let values = HashMap::from([
            (
                ":pk".to_string(),
                string_value(codec::principal_pk(principal)),
            ),
            (":member".to_string(), string_value(codec::MEMBER_PREFIX)),
            (":now".to_string(), number_value(now.as_millis())),
        ]);
        let mut ids = Vec::new();
        let mut start = None;
        // A principal has a handful of connections: one page, rarely two. Every page is read, to
        // a bound far above any real principal's, and past it the caller hears so: a ban that
        // silently missed sockets would be worse than one retried.
        for _ in 0..CONNECTIONS_OF_MAX_PAGES {
            let (items, last) = self
                .query_page(None, &codec::MEMBERS_OF_ROOM, values.clone(), start, 100)
                .await?;
            for item in &items {
                ids.push(codec::id_from_member(item)?);
            }
            start = last;
            if start.is_none() {
                return Ok(ids);
            }
        }
        Err(RepositoryError::Unavailable(format!(
            "connections_of read {CONNECTIONS_OF_MAX_PAGES} pages and found no end"
        )))
    }

    async fn reauth(
        &self,
        id: &ConnectionId,
        expires_at: Timestamp,
        grants: &domain::RoomGrants,
    ) -> Result<(), RepositoryError> {
        let update = format!(
            "SET #{} = :exp, #{} = :grants",
            codec::TOKEN_EXPIRES_AT,
            codec::REAUTH_GRANTS
        );
        let condition = format!("attribute_exists(#{PK})");
        let updated = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(codec::connection_key(id)))
            .update_expression(&update)
            .condition_expression(&condition)
            .set_expression_attribute_names(Some(codec::names_in(&[&update, &condition])))
            .expression_attribute_values(":exp", number_value(expires_at.as_millis()))
            .expression_attribute_values(":grants", string_value(grants.encode()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // Gone meanwhile: nothing to renew.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(repository_error(e)),
        }
    }
}

fn is_cancelled<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    e.as_service_error()
        .is_some_and(|e| e.is_transaction_canceled_exception())
}
