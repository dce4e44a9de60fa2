//! This service's own rules at connect, publish and join: the one file a fork edits to moderate,
//! transform or persist messages, attach metadata to connections, or keep people out of rooms
//! (docs/forking.md, "A moderation hook"). Every Lambda and the local gateway run these hooks
//! (`wiring::service`). The template's own have no rules: everything goes through unchanged.
//!
//! A hook may use the adapters (a DynamoDB client to persist, an HTTP client to call a moderation
//! API), but it runs inside the request's invocation: keep it quick, and make it idempotent.

use std::sync::Arc;

use domain::hooks::{Hooks, NoHooks};

/// The hooks every entry point wires in.
pub fn project_hooks() -> Arc<dyn Hooks> {
    Arc::new(NoHooks)
}
