//! `--deployment FILE`: the gateway in front of the packaged stack, as CloudFormation describes
//! it. The file (written by `scripts/rehearse` from the template `serverless package` wrote)
//! names the functions with their resolved environment, the routes, the authorizer with its
//! identity sources and the event source mappings; the gateway runs each function's real
//! `bootstrap` under its Lambda emulator ([`crate::lambda`]) instead of calling handlers in
//! process.
//!
//! - [`file`]: the deployment file, read and checked.
//! - [`routes`]: route selection and each route's function, as API Gateway invokes them.
//! - [`authorizer`]: the REQUEST authorizer function, behind its identity sources.
//! - [`mappings`]: the event source mappings, polling SQS as Lambda's pollers do.

mod authorizer;
mod file;
mod mappings;
mod routes;

use crate::lambda::Functions;

pub use file::{AuthorizerFile, Deployment, DeploymentError, FunctionFile, MappingFile};

/// A deployment, running: its functions, and its event source mappings polling.
pub struct Deployed {
    pub functions: Functions,
    mappings: mappings::Mappings,
}

impl Deployed {
    pub async fn start(deployment: &Deployment, functions: Functions) -> Self {
        Self {
            mappings: mappings::Mappings::start(deployment, functions.clone()).await,
            functions,
        }
    }

    /// Stops polling; instances end with the last clone of `functions`.
    pub fn stop(self) {
        self.mappings.stop();
    }
}
