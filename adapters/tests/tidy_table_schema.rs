//! The table is declared twice: in `infra/serverless.yml` for AWS, and as `TABLE_SCHEMA` for local
//! runs and tests. This test fails when the two disagree on anything the code relies on: keys,
//! attribute definitions, the listing index (name, keys, projection), TTL and billing mode, and the
//! index named in the IAM grant.

use std::collections::BTreeSet;

use adapters::dynamodb::TABLE_SCHEMA;
use serde_norway::Value;

const SERVERLESS_YML: &str = include_str!("../../infra/serverless.yml");

fn serverless() -> Value {
    serde_norway::from_str(SERVERLESS_YML).expect("infra/serverless.yml is YAML")
}

/// The value at `path`, with a message naming the path when it is missing.
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |node, key| {
        node.get(key)
            .unwrap_or_else(|| panic!("serverless.yml has no {}", path.join(".")))
    })
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value:?}"))
}

fn table_properties(yaml: &Value) -> &Value {
    at(
        yaml,
        &["resources", "Resources", "ConnectionsTable", "Properties"],
    )
}

/// `[(AttributeName, KeyType)]` of a KeySchema.
fn key_schema(value: &Value) -> Vec<(&str, &str)> {
    value
        .as_sequence()
        .expect("KeySchema is a list")
        .iter()
        .map(|key| {
            (
                text(at(key, &["AttributeName"])),
                text(at(key, &["KeyType"])),
            )
        })
        .collect()
}

#[test]
fn tidy_the_table_keys_and_billing_match_the_rust_schema() {
    let yaml = serverless();
    let table = table_properties(&yaml);
    assert_eq!(
        key_schema(at(table, &["KeySchema"])),
        [
            (TABLE_SCHEMA.partition_key, "HASH"),
            (TABLE_SCHEMA.sort_key, "RANGE")
        ]
    );
    assert_eq!(text(at(table, &["BillingMode"])), TABLE_SCHEMA.billing_mode);
    let definitions: BTreeSet<(&str, &str)> = at(table, &["AttributeDefinitions"])
        .as_sequence()
        .expect("AttributeDefinitions is a list")
        .iter()
        .map(|d| {
            (
                text(at(d, &["AttributeName"])),
                text(at(d, &["AttributeType"])),
            )
        })
        .collect();
    let expected: BTreeSet<(&str, &str)> = TABLE_SCHEMA
        .key_attributes()
        .into_iter()
        .map(|name| (name, "S"))
        .collect();
    assert_eq!(definitions, expected);
}

#[test]
fn tidy_the_listing_index_matches_the_rust_schema() {
    let yaml = serverless();
    let indexes = at(table_properties(&yaml), &["GlobalSecondaryIndexes"])
        .as_sequence()
        .expect("GlobalSecondaryIndexes is a list");
    let [index] = indexes.as_slice() else {
        panic!("expected exactly one index, got {}", indexes.len());
    };
    let expected = TABLE_SCHEMA.list_index;
    assert_eq!(text(at(index, &["IndexName"])), expected.name);
    assert_eq!(
        key_schema(at(index, &["KeySchema"])),
        [
            (expected.partition_key, "HASH"),
            (expected.sort_key, "RANGE")
        ]
    );
    assert_eq!(
        text(at(index, &["Projection", "ProjectionType"])),
        expected.projection_type
    );
    let projected: Vec<&str> = at(index, &["Projection", "NonKeyAttributes"])
        .as_sequence()
        .expect("NonKeyAttributes is a list")
        .iter()
        .map(text)
        .collect();
    assert_eq!(projected, expected.non_key_attributes);
}

#[test]
fn tidy_ttl_is_on_the_attribute_the_code_writes() {
    let yaml = serverless();
    let ttl = at(table_properties(&yaml), &["TimeToLiveSpecification"]);
    assert_eq!(
        text(at(ttl, &["AttributeName"])),
        TABLE_SCHEMA.ttl_attribute
    );
    assert_eq!(at(ttl, &["Enabled"]).as_bool(), Some(true));
}

/// Every string that follows "index" in a list: `!Join ["/", [table ARN, "index", NAME]]`.
fn index_names_in_arns(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Sequence(items) => {
            for pair in items.windows(2) {
                if pair[0].as_str() == Some("index") {
                    found.push(text(&pair[1]).to_string());
                }
            }
            items
                .iter()
                .for_each(|item| index_names_in_arns(item, found));
        }
        Value::Mapping(map) => map.values().for_each(|v| index_names_in_arns(v, found)),
        // CloudFormation short forms (`!Join`, `!GetAtt`) parse as tagged values.
        Value::Tagged(tagged) => index_names_in_arns(&tagged.value, found),
        _ => {}
    }
}

#[test]
fn tidy_the_iam_grant_names_the_index_the_code_queries() {
    let yaml = serverless();
    let mut names = Vec::new();
    index_names_in_arns(at(&yaml, &["resources", "Resources"]), &mut names);
    assert!(!names.is_empty(), "no index ARN in the IAM grants");
    assert!(
        names
            .iter()
            .all(|name| name == TABLE_SCHEMA.list_index.name),
        "IAM grants name {names:?}, the code queries {}",
        TABLE_SCHEMA.list_index.name
    );
}
