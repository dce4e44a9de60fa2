//! The end-to-end tests that need no browser and no process of their own, in one binary (one link
//! instead of one per file): the local gateway over real sockets, the in-memory stores' contracts,
//! the deployment mode, the workers. Each module is a file beside this one.

#[macro_use]
mod contract;
#[macro_use]
mod queue_contract;
mod abuse;
mod actions;
mod deployment;
mod inspector;
mod local_gateway;
mod management_api_properties;
mod memory_queue_contract;
mod memory_repository;
mod queued_delivery;
mod sessions;
mod tidy;
mod worker_crash;
