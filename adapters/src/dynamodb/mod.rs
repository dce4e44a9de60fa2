//! The DynamoDB `ConnectionRepository`: one table, three item kinds of access, no Scan anywhere.
//!
//! The table design (items, keys, the sparse listing index, the access patterns and their cost,
//! and why) is in ARCHITECTURE.md, "DynamoDB table": one document, kept there. The names live in
//! code: `table::TABLE_SCHEMA`, which `adapters/tests/tidy_table_schema.rs` holds
//! `infra/serverless.yml` to.

mod bans;
mod batch;
mod codec;
mod errors;
mod rate_limit;
mod repository;
mod room_log;
mod table;

pub use bans::DynamoBans;
pub use codec::ATTRIBUTES as ATTRIBUTE_NAMES;
pub use repository::{DynamoConnectionRepository, DynamoSettings, Seed};
pub use room_log::DynamoRoomLog;
pub use table::{IndexSchema, TABLE_SCHEMA, TableSchema, create_table_if_missing};
