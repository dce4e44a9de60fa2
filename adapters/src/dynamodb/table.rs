use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use domain::RepositoryError;

use super::codec;
use super::errors::repository_error;

/// The table's shape: the one source of its names. `create_table_if_missing` creates exactly this,
/// and `adapters/tests/tidy_table_schema.rs` fails when `infra/serverless.yml` declares anything
/// else. Why the table looks like this: ARCHITECTURE.md, "DynamoDB table". Enum values are spelled
/// as CloudFormation and the DynamoDB API spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub billing_mode: &'static str,
    pub ttl_attribute: &'static str,
    pub list_index: IndexSchema,
}

/// A global secondary index: its name, keys and what it projects besides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub projection_type: &'static str,
    pub non_key_attributes: &'static [&'static str],
}

/// Every key is a string (`S`).
pub const TABLE_SCHEMA: TableSchema = TableSchema {
    partition_key: codec::PK,
    sort_key: codec::SK,
    billing_mode: "PAY_PER_REQUEST",
    ttl_attribute: codec::TTL,
    list_index: IndexSchema {
        name: codec::LIST_INDEX,
        partition_key: codec::LIST_PK,
        sort_key: codec::LIST_SK,
        projection_type: "INCLUDE",
        non_key_attributes: &[codec::EXPIRES_AT],
    },
};

impl TableSchema {
    /// The attributes that need a definition: every key of the table and of its index.
    pub fn key_attributes(&self) -> [&'static str; 4] {
        [
            self.partition_key,
            self.sort_key,
            self.list_index.partition_key,
            self.list_index.sort_key,
        ]
    }
}

/// Creates the table as `TABLE_SCHEMA` (and so `infra/serverless.yml`) declares it, unless it
/// exists. For local runs and tests: in AWS, CloudFormation owns the table.
pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<(), RepositoryError> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let invalid =
        |e: aws_sdk_dynamodb::error::BuildError| RepositoryError::Unavailable(e.to_string());
    let schema = TABLE_SCHEMA;
    let index = GlobalSecondaryIndex::builder()
        .index_name(schema.list_index.name)
        .key_schema(key(schema.list_index.partition_key, KeyType::Hash).map_err(invalid)?)
        .key_schema(key(schema.list_index.sort_key, KeyType::Range).map_err(invalid)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::from(schema.list_index.projection_type))
                .set_non_key_attributes(Some(
                    schema
                        .list_index
                        .non_key_attributes
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                ))
                .build(),
        )
        .build()
        .map_err(invalid)?;
    let definitions = schema
        .key_attributes()
        .into_iter()
        .map(|name| attr(name).map_err(invalid))
        .collect::<Result<Vec<_>, _>>()?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(schema.billing_mode))
        .key_schema(key(schema.partition_key, KeyType::Hash).map_err(invalid)?)
        .key_schema(key(schema.sort_key, KeyType::Range).map_err(invalid)?)
        .set_attribute_definitions(Some(definitions))
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(repository_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(schema.ttl_attribute)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(repository_error)?;
    Ok(())
}
