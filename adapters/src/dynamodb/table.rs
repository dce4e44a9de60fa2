use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use domain::RepositoryError;

use super::codec;
use super::errors::repository_error;

/// Creates the table as `infra/serverless.yml` declares it, unless it exists. For local runs and
/// tests: in AWS, CloudFormation owns the table.
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
    let index = GlobalSecondaryIndex::builder()
        .index_name(codec::LIST_INDEX)
        .key_schema(key(codec::LIST_PK, KeyType::Hash).map_err(invalid)?)
        .key_schema(key(codec::LIST_SK, KeyType::Range).map_err(invalid)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(codec::EXPIRES_AT)
                .build(),
        )
        .build()
        .map_err(invalid)?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(codec::PK, KeyType::Hash).map_err(invalid)?)
        .key_schema(key(codec::SK, KeyType::Range).map_err(invalid)?)
        .attribute_definitions(attr(codec::PK).map_err(invalid)?)
        .attribute_definitions(attr(codec::SK).map_err(invalid)?)
        .attribute_definitions(attr(codec::LIST_PK).map_err(invalid)?)
        .attribute_definitions(attr(codec::LIST_SK).map_err(invalid)?)
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
                .attribute_name(codec::TTL)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(repository_error)?;
    Ok(())
}
