//! The domain's rules, one test each, against mockall mocks of the ports.

mod back_pressure;
mod delivery_guarantees;
mod delivery_job;
mod harness;
mod parser_table;
mod properties;
mod protocol_spec;
mod rate_limit;
mod rules;
mod tidy;
mod worker;
