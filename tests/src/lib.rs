//! Support for the end-to-end tests: starting, reaching and stopping the servers they need.
