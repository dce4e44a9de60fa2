//! The adapters' tests that need no process of their own, in one binary (one link instead of one
//! per file). Each module is a file beside this one; `emf_metrics`, `fanout_invocation` and
//! `lambda_logs` are binaries of their own (a process-wide recorder or subscriber).

#[macro_use]
mod support;
mod authorizer;
mod connect_requires_principal;
mod dynamodb_requests;
mod inbound_events;
mod memory_queue;
mod notifier_signature;
mod notifier_status_mapping;
mod sqs_batch_handler;
mod sqs_requests;
mod tidy;
mod tidy_metric_names;
mod tidy_settings;
mod tidy_table_schema;
