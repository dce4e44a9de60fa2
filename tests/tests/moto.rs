//! The tests against DynamoDB and SQS on the moto server `./scripts/test` starts, in one binary:
//! the stores' contracts, seeding, fault injection, queued delivery and dead letters. Each module
//! is a file beside this one.

#[macro_use]
mod contract;
#[macro_use]
mod queue_contract;
mod dynamodb_repository;
mod dynamodb_seeding;
mod fault_injection;
mod lifecycle_events_eventbridge;
mod queued_delivery_sqs;
mod sqs_dead_letters;
mod sqs_queue_contract;
