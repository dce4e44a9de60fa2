//! The deployment file: what `scripts/rehearse` writes from the packaged template, read and
//! checked before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::authorizer::{FunctionAuthorizer, IdentitySource};
use super::routes::FunctionRoutes;
use crate::lambda::{FunctionSpec, Functions};

/// The deployment file, as `scripts/rehearse` writes it: every value resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub stage: String,
    pub api_id: String,
    pub region: String,
    pub account_id: String,
    pub route_selection_expression: String,
    /// Each route key, and the function its integration invokes (`None`: no Lambda behind it).
    pub routes: BTreeMap<String, Option<String>>,
    pub authorizer: Option<AuthorizerFile>,
    pub functions: BTreeMap<String, FunctionFile>,
    #[serde(default)]
    pub event_source_mappings: Vec<MappingFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerFile {
    pub function: String,
    /// As the template writes them: `route.request.querystring.token`, `route.request.header.Auth`.
    pub identity_source: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionFile {
    pub bootstrap: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: u64,
    pub memory_mb: u32,
    pub reserved_concurrency: Option<usize>,
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingFile {
    pub function: String,
    pub queue_url: String,
    pub batch_size: usize,
    /// `None`: Lambda's own scaling; here five pollers, as Lambda starts with.
    pub maximum_concurrency: Option<usize>,
    pub report_batch_item_failures: bool,
    pub sqs_endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Why a deployment file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("cannot read the deployment file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the deployment file {path} is not a deployment: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The body field a route selection expression reads (`$request.body.action` -> `action`).
const SELECTION_PREFIX: &str = "$request.body.";

impl Deployment {
    pub fn load(path: &Path) -> Result<Self, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Read {
            path: path.to_owned(),
            source,
        })?;
        let deployment: Self =
            serde_json::from_str(&text).map_err(|source| DeploymentError::Parse {
                path: path.to_owned(),
                source,
            })?;
        deployment.check()?;
        Ok(deployment)
    }

    /// Every function a route, the authorizer or a mapping names exists, and what the gateway
    /// reads it can read.
    fn check(&self) -> Result<(), DeploymentError> {
        let invalid = |message: String| Err(DeploymentError::Invalid(message));
        let known = |function: &str, by: &str| {
            if self.functions.contains_key(function) {
                Ok(())
            } else {
                invalid(format!(
                    "{by} invokes {function:?}, which is not among the functions"
                ))
            }
        };
        self.selection_field()?;
        for (key, function) in &self.routes {
            if let Some(function) = function {
                known(function, &format!("route {key:?}"))?;
            }
        }
        if let Some(authorizer) = &self.authorizer {
            known(&authorizer.function, "the authorizer")?;
            for source in &authorizer.identity_source {
                IdentitySource::parse(source).map_err(DeploymentError::Invalid)?;
            }
        }
        for mapping in &self.event_source_mappings {
            known(
                &mapping.function,
                &format!("the mapping of {}", mapping.queue_url),
            )?;
            if !(1..=10).contains(&mapping.batch_size) {
                return invalid(format!(
                    "the mapping of {} has batch size {}: an SQS receive takes 1 to 10",
                    mapping.queue_url, mapping.batch_size
                ));
            }
        }
        Ok(())
    }

    /// The body field the route selection expression reads.
    fn selection_field(&self) -> Result<&str, DeploymentError> {
        self.route_selection_expression
            .strip_prefix(SELECTION_PREFIX)
            .filter(|field| !field.is_empty() && !field.contains(['.', '[', '$']))
            .ok_or_else(|| {
                DeploymentError::Invalid(format!(
                    "route selection expression {:?}: only {SELECTION_PREFIX}<field> is supported",
                    self.route_selection_expression
                ))
            })
    }

    /// The `$connect` ARN an authorizer's policy must allow.
    pub fn connect_arn(&self) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{}/{}/$connect",
            self.region, self.account_id, self.api_id, self.stage
        )
    }

    /// Every function, each with its pool of instances.
    pub fn functions(&self) -> Functions {
        Functions::new(self.functions.iter().map(|(name, function)| FunctionSpec {
            name: name.clone(),
            bootstrap: function.bootstrap.clone(),
            environment: function.environment.clone(),
            timeout: Duration::from_secs(function.timeout_seconds),
            memory_mb: function.memory_mb,
            reserved_concurrency: function.reserved_concurrency,
            log_file: function.log_file.clone(),
        }))
    }

    /// The routes, invoking `functions`.
    pub(crate) fn routes(&self, functions: Functions) -> FunctionRoutes {
        FunctionRoutes::new(
            functions,
            self.routes.clone(),
            self.selection_field().unwrap_or("action").to_owned(),
        )
    }

    /// The authorizer function, behind its identity sources, when `$connect` has one.
    pub(crate) fn authorizer(&self, functions: Functions) -> Option<FunctionAuthorizer> {
        let authorizer = self.authorizer.as_ref()?;
        Some(FunctionAuthorizer::new(
            functions,
            authorizer.function.clone(),
            authorizer
                .identity_source
                .iter()
                .filter_map(|source| IdentitySource::parse(source).ok())
                .collect(),
        ))
    }
}
