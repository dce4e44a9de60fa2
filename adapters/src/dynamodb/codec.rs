//! Item shapes: the only place that knows attribute names.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use domain::rate_limit::Bucket;
use domain::stream::LoggedMessage;
use domain::{
    Connection, ConnectionId, Member, MessageId, PageToken, Principal, RepositoryError, RoomGrants,
    RoomName, Timestamp,
};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const LIST_PK: &str = "lpk";
pub const LIST_SK: &str = "lsk";
pub const TTL: &str = "ttl";
pub const EXPIRES_AT: &str = "expiresAt";
pub const CONNECTED_AT: &str = "connectedAt";
pub const PRINCIPAL: &str = "principal";
pub const SOURCE_IP: &str = "sourceIp";
pub const USER_AGENT: &str = "userAgent";
/// What the `on_connect` hook attached to the connection.
pub const METADATA: &str = "metadata";
/// When the connection's token expires (ms), and the grants of its latest `reauth`.
pub const TOKEN_EXPIRES_AT: &str = "tokenExpiresAt";
pub const REAUTH_GRANTS: &str = "reauthGrants";
/// A ban's reason.
pub const REASON: &str = "reason";
pub const ROOMS: &str = "rooms";
/// The rate-limit bucket on the connection item: milli-tokens left, and when (ms) that was so.
pub const BUCKET_TOKENS: &str = "bucketMilliTokens";
pub const BUCKET_AT: &str = "bucketAt";
/// A room stream's counter, and the `seq` a kept message or a once-item holds.
pub const SEQ: &str = "seq";
pub const MESSAGE_ID: &str = "messageId";
pub const FROM: &str = "from";
pub const DATA: &str = "data";
pub const SENT_AT: &str = "sentAt";
pub const META: &str = "META";
pub const LIST_INDEX: &str = "connections";

/// Every attribute name above. Expressions elsewhere never spell one: they write `#{NAME}` with
/// these constants and pass the expressions through [`names_in`].
pub const ATTRIBUTES: &[&str] = &[
    PK,
    SK,
    LIST_PK,
    LIST_SK,
    TTL,
    EXPIRES_AT,
    CONNECTED_AT,
    PRINCIPAL,
    SOURCE_IP,
    USER_AGENT,
    METADATA,
    TOKEN_EXPIRES_AT,
    REAUTH_GRANTS,
    REASON,
    ROOMS,
    BUCKET_TOKENS,
    BUCKET_AT,
    SEQ,
    MESSAGE_ID,
    FROM,
    DATA,
    SENT_AT,
];

pub type Item = HashMap<String, AttributeValue>;

/// The `ExpressionAttributeNames` for the `#name` placeholders `expressions` use (DynamoDB refuses
/// a request that defines a name no expression uses).
pub fn names_in(expressions: &[&str]) -> HashMap<String, String> {
    ATTRIBUTES
        .iter()
        .filter(|name| {
            let placeholder = format!("#{name}");
            expressions.iter().any(|expression| {
                expression.match_indices(&placeholder).any(|(at, _)| {
                    !expression[at + placeholder.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                })
            })
        })
        .map(|name| (format!("#{name}"), (*name).to_string()))
        .collect()
}

pub fn connection_pk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

pub fn room_pk(room: &RoomName) -> String {
    format!("ROOM#{room}")
}

/// What starts the sort key of a room's membership items, and only theirs: a room's partition
/// also holds its stream (`SEQ`, `MSG#`, `ID#`), which no member query may read as members.
pub const MEMBER_PREFIX: &str = "CONN#";

pub fn member_sk(id: &ConnectionId) -> String {
    format!("{MEMBER_PREFIX}{id}")
}

/// The key condition of every query for a room's members.
pub static MEMBERS_OF_ROOM: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("#{PK} = :pk AND begins_with(#{SK}, :member)"));

/// The values [`MEMBERS_OF_ROOM`] and the live-row filter (`:now`) use.
pub fn members_of_room_values(room: &RoomName, now: Timestamp) -> Item {
    HashMap::from([
        (":pk".to_string(), string_value(room_pk(room))),
        (":member".to_string(), string_value(MEMBER_PREFIX)),
        (":now".to_string(), number_value(now.as_millis())),
    ])
}

/// A principal's connection, in the principal's own partition: how `connections_of` finds them.
pub fn principal_connection_key(principal: &Principal, id: &ConnectionId) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(principal_pk(principal))),
        (SK.to_string(), string_value(member_sk(id))),
    ])
}

pub fn principal_pk(principal: &Principal) -> String {
    format!("PRINCIPAL#{principal}")
}

/// A principal's ban: an item of its own, expiring with the ban.
pub fn ban_key(principal: &Principal) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(principal_pk(principal))),
        (SK.to_string(), string_value("BAN")),
    ])
}

/// A room stream's counter: the last `seq` handed out.
pub fn stream_counter_key(room: &RoomName) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(room_pk(room))),
        (SK.to_string(), string_value("SEQ")),
    ])
}

/// A kept message: sorted by `seq` (zero-padded, so text order is number order).
pub fn stream_message_sk(seq: u64) -> String {
    format!("MSG#{seq:020}")
}

/// Which `seq` a backend's message id took, so a redelivery takes the same.
pub fn stream_once_key(room: &RoomName, id: &MessageId) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(room_pk(room))),
        (SK.to_string(), string_value(format!("ID#{id}"))),
    ])
}

pub fn string_value(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn number_value(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn connection_key(id: &ConnectionId) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(connection_pk(id))),
        (SK.to_string(), string_value(META)),
    ])
}

/// A principal's rate-limit bucket: an item of its own, across the principal's connections.
pub fn principal_rate_key(principal: &Principal) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(principal_pk(principal))),
        (SK.to_string(), string_value("RATE")),
    ])
}

pub fn membership_key(id: &ConnectionId, room: &RoomName) -> Item {
    HashMap::from([
        (PK.to_string(), string_value(room_pk(room))),
        (SK.to_string(), string_value(member_sk(id))),
    ])
}

/// Which listing partition a connection goes to: FNV-1a of its id, stable across releases.
pub fn shard_of(id: &ConnectionId, shards: u16) -> u16 {
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(shards.max(1))) as u16
}

pub fn list_pk(shard: u16) -> String {
    format!("CONNS#{shard}")
}

/// The whole connection item, as `save` and then `join` of each of `rooms` leave it.
pub fn connection_item(c: &Connection, list_shards: u16, rooms: &[RoomName]) -> Item {
    let mut item = connection_key(&c.id);
    item.insert(
        CONNECTED_AT.into(),
        number_value(c.connected_at.as_millis()),
    );
    item.insert(EXPIRES_AT.into(), number_value(c.expires_at.as_millis()));
    item.insert(TTL.into(), number_value(c.expires_at.as_secs_ceil()));
    item.insert(
        LIST_PK.into(),
        string_value(list_pk(shard_of(&c.id, list_shards))),
    );
    item.insert(LIST_SK.into(), string_value(c.id.as_str()));
    let optional = [
        (PRINCIPAL, c.principal.as_ref().map(|p| p.as_str())),
        (SOURCE_IP, c.source_ip.as_deref()),
        (USER_AGENT, c.user_agent.as_deref()),
        (METADATA, c.metadata.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), string_value(value));
        }
    }
    // DynamoDB refuses an empty set: no room, no attribute, as after `save`.
    if !rooms.is_empty() {
        let names = rooms.iter().map(|r| r.to_string()).collect();
        item.insert(ROOMS.into(), AttributeValue::Ss(names));
    }
    item
}

/// The membership item `join` writes: it expires with its connection.
pub fn membership_item(id: &ConnectionId, room: &RoomName, expires_at: Timestamp) -> Item {
    let mut item = membership_key(id, room);
    item.insert(EXPIRES_AT.into(), number_value(expires_at.as_millis()));
    item.insert(TTL.into(), number_value(expires_at.as_secs_ceil()));
    item
}

fn malformed(what: &str) -> RepositoryError {
    RepositoryError::Unavailable(format!("malformed item in the connections table: {what}"))
}

fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &Item, name: &str) -> Result<u64, RepositoryError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| malformed(name))
}

fn optional_number(item: &Item, name: &str) -> Result<Option<u64>, RepositoryError> {
    if item.contains_key(name) {
        number(item, name).map(Some)
    } else {
        Ok(None)
    }
}

pub fn expires_at(item: &Item) -> Result<Timestamp, RepositoryError> {
    number(item, EXPIRES_AT).map(Timestamp::from_millis)
}

/// The stored rate-limit bucket; `None` before the connection's first counted message.
pub fn bucket_from(item: &Item) -> Result<Option<Bucket>, RepositoryError> {
    if !item.contains_key(BUCKET_AT) {
        return Ok(None);
    }
    Ok(Some(Bucket {
        milli_tokens: number(item, BUCKET_TOKENS)?,
        updated_at: Timestamp::from_millis(number(item, BUCKET_AT)?),
    }))
}

pub fn connection_from(item: &Item) -> Result<Connection, RepositoryError> {
    let pk = string(item, PK).ok_or_else(|| malformed(PK))?;
    let raw_id = pk.strip_prefix("CONN#").ok_or_else(|| malformed(PK))?;
    let principal = string(item, PRINCIPAL)
        .map(Principal::parse)
        .transpose()
        .map_err(|e| malformed(&format!("principal: {e}")))?;
    Ok(Connection {
        id: ConnectionId::parse(raw_id).map_err(|e| malformed(&format!("id: {e}")))?,
        connected_at: Timestamp::from_millis(number(item, CONNECTED_AT)?),
        expires_at: expires_at(item)?,
        principal,
        source_ip: string(item, SOURCE_IP),
        user_agent: string(item, USER_AGENT),
        metadata: string(item, METADATA),
        token_expires_at: optional_number(item, TOKEN_EXPIRES_AT)?.map(Timestamp::from_millis),
        reauth_grants: string(item, REAUTH_GRANTS)
            .map(|encoded| RoomGrants::decode(&encoded))
            .transpose()
            .map_err(|e| malformed(&format!("{REAUTH_GRANTS}: {e}")))?,
    })
}

pub fn rooms_from(item: &Item) -> Vec<RoomName> {
    item.get(ROOMS)
        .and_then(|v| v.as_ss().ok())
        .map(|names| {
            names
                .iter()
                .filter_map(|n| RoomName::parse(n.as_str()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A kept message of a room's stream, until `keep_until`.
pub fn stream_message_item(
    room: &RoomName,
    message: &LoggedMessage,
    keep_until: Timestamp,
) -> Item {
    let mut item = HashMap::from([
        (PK.to_string(), string_value(room_pk(room))),
        (SK.to_string(), string_value(stream_message_sk(message.seq))),
        (SEQ.to_string(), number_value(message.seq)),
        (MESSAGE_ID.to_string(), string_value(message.id.as_str())),
        (DATA.to_string(), string_value(message.data.clone())),
        (SENT_AT.to_string(), number_value(message.sent_at)),
        (EXPIRES_AT.to_string(), number_value(keep_until.as_millis())),
        (TTL.to_string(), number_value(keep_until.as_secs_ceil())),
    ]);
    if let Some(from) = &message.from {
        item.insert(FROM.into(), string_value(from.as_str()));
    }
    if let Some(principal) = &message.principal {
        item.insert(PRINCIPAL.into(), string_value(principal.as_str()));
    }
    item
}

pub fn logged_message_from(item: &Item) -> Result<LoggedMessage, RepositoryError> {
    let id = string(item, MESSAGE_ID).ok_or_else(|| malformed(MESSAGE_ID))?;
    Ok(LoggedMessage {
        id: MessageId::parse(id).map_err(|e| malformed(&format!("message id: {e}")))?,
        seq: number(item, SEQ)?,
        from: string(item, FROM)
            .map(ConnectionId::parse)
            .transpose()
            .map_err(|e| malformed(&format!("from: {e}")))?,
        principal: string(item, PRINCIPAL)
            .map(Principal::parse)
            .transpose()
            .map_err(|e| malformed(&format!("principal: {e}")))?,
        data: string(item, DATA).ok_or_else(|| malformed(DATA))?,
        sent_at: number(item, SENT_AT)?,
    })
}

pub fn reason_of(item: &Item) -> Option<String> {
    string(item, REASON)
}

pub fn seq_of(item: &Item) -> Result<u64, RepositoryError> {
    number(item, SEQ)
}

pub fn id_from_member(item: &Item) -> Result<ConnectionId, RepositoryError> {
    let sk = string(item, SK).ok_or_else(|| malformed(SK))?;
    let raw = sk.strip_prefix("CONN#").ok_or_else(|| malformed(SK))?;
    ConnectionId::parse(raw).map_err(|e| malformed(&format!("member id: {e}")))
}

/// The principal a connection or membership item carries, if any.
pub fn principal_of(item: &Item) -> Option<String> {
    string(item, PRINCIPAL)
}

/// A member list entry from a membership item (its principal was copied there on join).
pub fn member_from(item: &Item) -> Result<Member, RepositoryError> {
    Ok(Member {
        id: id_from_member(item)?,
        principal: principal_of(item)
            .map(Principal::parse)
            .transpose()
            .map_err(|e| malformed(&format!("member principal: {e}")))?,
    })
}

pub fn id_from_listing(item: &Item) -> Result<ConnectionId, RepositoryError> {
    let raw = string(item, LIST_SK).ok_or_else(|| malformed(LIST_SK))?;
    ConnectionId::parse(raw).map_err(|e| malformed(&format!("listed id: {e}")))
}

/// A page token: the listing shard and DynamoDB's `LastEvaluatedKey`, whose attributes are all
/// strings in this table, as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    shard: u16,
    key: HashMap<String, String>,
}

pub fn encode_token(shard: u16, key: &Item) -> Result<PageToken, RepositoryError> {
    let key = key
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                v.as_s().map_err(|_| malformed("key attribute"))?.clone(),
            ))
        })
        .collect::<Result<HashMap<_, _>, RepositoryError>>()?;
    let json = serde_json::to_string(&Cursor { shard, key })
        .map_err(|e| RepositoryError::Unavailable(e.to_string()))?;
    Ok(PageToken::new(json))
}

pub fn decode_token(token: &PageToken) -> Result<(u16, Option<Item>), RepositoryError> {
    let cursor: Cursor = serde_json::from_str(token.as_str())
        .map_err(|e| RepositoryError::Unavailable(format!("bad page token: {e}")))?;
    let key = (!cursor.key.is_empty()).then(|| {
        cursor
            .key
            .into_iter()
            .map(|(k, v)| (k, string_value(v)))
            .collect()
    });
    Ok((cursor.shard, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_ids_and_stay_stable() {
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!(shard_of(&id, 1), 0);
        assert_eq!(shard_of(&id, 16), shard_of(&id, 16));
        let used: std::collections::BTreeSet<u16> = (0..200)
            .map(|i| shard_of(&ConnectionId::parse(format!("c{i}")).unwrap(), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn a_connection_item_reads_back_as_the_same_connection_in_its_listing_shard() {
        let connection = Connection {
            id: ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap(),
            connected_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(7_201_500),
            principal: Some(Principal::parse("alice").unwrap()),
            source_ip: Some("192.0.2.1".into()),
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        };
        let rooms = [RoomName::parse("a").unwrap(), RoomName::parse("b").unwrap()];

        let item = connection_item(&connection, 8, &rooms);

        assert_eq!(connection_from(&item).unwrap(), connection);
        assert_eq!(id_from_listing(&item).unwrap(), connection.id);
        assert_eq!(rooms_from(&item), rooms);
        assert_eq!(
            item[LIST_PK],
            string_value(list_pk(shard_of(&connection.id, 8))),
            "listed in the shard `save` would use"
        );
        assert_eq!(
            item[TTL],
            number_value(7_202),
            "ttl in whole seconds, rounded up"
        );
        assert!(!item.contains_key(USER_AGENT));
        let roomless = connection_item(&connection, 8, &[]);
        assert!(
            !roomless.contains_key(ROOMS),
            "no empty set: DynamoDB refuses one"
        );
    }

    #[test]
    fn a_membership_item_names_its_member_and_expires_with_it() {
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        let item = membership_item(
            &id,
            &RoomName::parse("lobby").unwrap(),
            Timestamp::from_millis(7_201_500),
        );
        assert_eq!(item[PK], string_value("ROOM#lobby"));
        assert_eq!(id_from_member(&item).unwrap(), id);
        assert_eq!(
            expires_at(&item).unwrap(),
            Timestamp::from_millis(7_201_500)
        );
        assert_eq!(item[TTL], number_value(7_202));
    }

    #[test]
    fn page_tokens_round_trip() {
        let key = HashMap::from([
            ("pk".to_string(), string_value("CONN#a")),
            ("lsk".to_string(), string_value("a")),
        ]);
        let token = encode_token(3, &key).unwrap();
        let (shard, back) = decode_token(&token).unwrap();
        assert_eq!(shard, 3);
        assert_eq!(back.unwrap(), key);
    }

    #[test]
    fn names_in_defines_exactly_the_placeholders_used_as_whole_words() {
        let names = names_in(&[&format!("#{LIST_PK} = :v AND #{TTL}x > :t")]);
        assert_eq!(
            names,
            HashMap::from([(format!("#{LIST_PK}"), LIST_PK.to_string())])
        );
    }

    #[test]
    fn a_garbled_page_token_is_an_error_not_a_panic() {
        assert!(decode_token(&PageToken::new("{nope")).is_err());
    }
}
