//! The DynamoDB `ConnectionRepository`: one table, three item kinds of access, no Scan anywhere.
//!
//! # Table design
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | connection | `CONN#{id}` | `META` | `connectedAt`, `expiresAt` (ms), `ttl` (s), `principal`, `sourceIp`, `userAgent`, `rooms` (string set), `lpk` = `CONNS#{shard}`, `lsk` = `{id}` |
//! | membership | `ROOM#{room}` | `CONN#{id}` | `expiresAt` (ms), `ttl` (s) |
//!
//! GSI `connections` (`lpk` HASH, `lsk` RANGE, KEYS_ONLY plus `expiresAt`) is sparse: only connection
//! items carry `lpk`, so listing everyone never reads a membership.
//!
//! | operation | DynamoDB calls | cost |
//! |---|---|---|
//! | `save` (connect) | one `UpdateItem` (an upsert that keeps `rooms`) | 1 write |
//! | `remove` (disconnect) | `DeleteItem` returning the old item, then `BatchWriteItem` of its memberships in chunks of 25, retrying `UnprocessedItems` | 1 + rooms writes |
//! | `save_many` (seeding) | `BatchWriteItem` of whole connection and membership items, 25 a call, retrying `UnprocessedItems` | 1 write an item |
//! | `get`, `rooms_of` | one strongly consistent `GetItem` | 1 read |
//! | `join` | `GetItem`, then `TransactWriteItems`: add the room to the connection's set on condition it exists, is live and has room, and put the membership | 1 read + 2 transactional writes |
//! | `leave` | `TransactWriteItems`: delete the membership, remove the room from the set | 2 transactional writes |
//! | `members_of` | paged, strongly consistent `Query` on `ROOM#{room}` | 1 read unit per 4 KB |
//! | `all_connections` | paged `Query` on the GSI (eventually consistent, as every GSI), shard after shard | half a read unit per 4 KB |
//!
//! Why a transaction for joins: the connection's `rooms` set is what `remove` deletes from, so a
//! join that commits before the delete is cleaned up by it, and one that comes after fails its
//! condition. No orphan membership either way, and the room limit holds under concurrent joins.
//!
//! Why a listing partition and not a Scan: a Scan reads every membership item too, and gets slower
//! as rooms fill. The price is a hot partition: every connect writes to `CONNS#0`, and one GSI
//! partition takes about 1 000 writes/s. Past that, raise `list_shards` (connections are spread by a
//! hash of their id, and `all_connections` reads the shards in turn).
//!
//! Every item carries `ttl` = the connection's expiry in seconds. DynamoDB deletes expired items
//! days late, so every read also filters on `expiresAt`.

mod batch;
mod codec;
mod errors;
mod repository;
mod table;

pub use repository::{DynamoConnectionRepository, DynamoSettings, Seed};
pub use table::create_table_if_missing;
