//! Configuration from the environment, checked at start-up with messages that name the variable.

use domain::{RateLimit, Settings};

use crate::apigateway::{EndpointError, ManagementEndpoint, NotifierClient, url_suffix_for};
use crate::dynamodb::DynamoSettings;
use crate::settings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} = {value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "the management endpoint is not configured: set MANAGEMENT_ENDPOINT (https://{{apiId}}.execute-api.{{region}}.amazonaws.com/{{stage}}), or API_ID and STAGE with AWS_REGION (and AWS_URL_SUFFIX outside the aws and aws-cn partitions)"
    )]
    NoEndpoint,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// Everything a Lambda needs, read once at start-up.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub dynamo: DynamoSettings,
    pub endpoint: ManagementEndpoint,
    pub settings: Settings,
    /// The service's own delivery queue (`INTERNAL_QUEUE_URL`): where broadcasts larger than
    /// `INLINE_RECIPIENTS`, continuations and hand-overs go; without one, every broadcast is
    /// delivered inline, whatever its size.
    pub internal_queue_url: Option<String>,
    /// The queue backends publish to (`BACKEND_QUEUE_URL`): read by `fanout`, never written by
    /// the service.
    pub backend_queue_url: Option<String>,
    /// Where `fanout` sets aside what can never be delivered (`DEAD_LETTER_QUEUE_URL`).
    pub dead_letter_queue_url: Option<String>,
    /// Refuse a `$connect` that carries no authorizer principal (`REQUIRE_PRINCIPAL`): set when
    /// the stack deploys the authorizer, so a route that lost it fails closed.
    pub require_principal: bool,
    /// The `@connections` client (`NOTIFIER_CLIENT`, `signed` or `sdk`): the signed one unless
    /// set; the SDK-based one stays selectable as the reference.
    pub notifier_client: NotifierClient,
    /// Where lifecycle events go (`EVENT_BUS_NAME`), with `EVENT_SOURCE` as their source; none
    /// are published without a bus.
    pub event_bus: Option<String>,
    pub event_source: String,
}

impl ServiceConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment. Every variable
    /// is declared, with its bounds and default, in [`crate::settings`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        let table = settings::CONNECTIONS_TABLE
            .read(&get, false)?
            .ok_or(ConfigError::Missing(settings::CONNECTIONS_TABLE.name))?;
        let endpoint = match (
            get(settings::MANAGEMENT_ENDPOINT.name),
            get(settings::API_ID.name),
            get(settings::STAGE.name),
        ) {
            (Some(url), _, _) => ManagementEndpoint::parse(&url)?,
            (_, Some(api), Some(stage)) => {
                let region = get("AWS_REGION").ok_or(ConfigError::Missing("AWS_REGION"))?;
                let suffix = get(settings::AWS_URL_SUFFIX.name)
                    .unwrap_or_else(|| url_suffix_for(&region).to_string());
                ManagementEndpoint::for_api_with_suffix(&api, &region, &suffix, &stage)?
            }
            _ => return Err(ConfigError::NoEndpoint),
        };
        let settings = settings::domain_settings(&get, false)?;
        // A margin as long as the function's run would hand every job back untouched.
        let timeout: u64 = settings::FUNCTION_TIMEOUT_SECONDS.parsed(&get, false)?;
        if settings.job_safety_margin.as_millis() >= u128::from(timeout) * 1000 {
            return Err(ConfigError::Invalid {
                name: settings::JOB_SAFETY_MARGIN_MS.name,
                value: settings.job_safety_margin.as_millis().to_string(),
                reason: format!(
                    "must be below the function's timeout ({} = {timeout} s)",
                    settings::FUNCTION_TIMEOUT_SECONDS.name
                ),
            });
        }
        let mut dynamo = DynamoSettings::new(table);
        dynamo.page_size = settings::PAGE_SIZE.parsed(&get, false)?;
        dynamo.list_shards = settings::LIST_SHARDS.parsed(&get, false)?;
        Ok(Self {
            dynamo,
            endpoint,
            settings,
            internal_queue_url: settings::INTERNAL_QUEUE_URL.read(&get, false)?,
            backend_queue_url: settings::BACKEND_QUEUE_URL.read(&get, false)?,
            dead_letter_queue_url: settings::DEAD_LETTER_QUEUE_URL.read(&get, false)?,
            require_principal: settings::REQUIRE_PRINCIPAL.parsed(&get, false)?,
            notifier_client: settings::NOTIFIER_CLIENT.parsed(&get, false)?,
            event_bus: settings::EVENT_BUS_NAME.read(&get, false)?,
            event_source: settings::EVENT_SOURCE.parsed(&get, false)?,
        })
    }
}

/// The Lambdas' rate limit when none is configured: see BENCHMARKS.md, "Rate limit", for why.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 10,
    burst: 20,
};

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServiceConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn a_missing_table_is_named() {
        let e = config(&[("MANAGEMENT_ENDPOINT", "https://x/prod")]).unwrap_err();
        assert_eq!(e.to_string(), "CONNECTIONS_TABLE is not set");
    }

    #[test]
    fn the_endpoint_is_built_from_parts_when_no_url_is_given() {
        let c = config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("API_ID", "abc"),
            ("STAGE", "dev"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/dev"
        );
    }

    #[test]
    fn the_url_suffix_follows_the_region_unless_set() {
        let parts = [
            ("CONNECTIONS_TABLE", "t"),
            ("API_ID", "abc"),
            ("STAGE", "dev"),
            ("AWS_REGION", "cn-northwest-1"),
        ];
        assert_eq!(
            config(&parts).unwrap().endpoint.as_str(),
            "https://abc.execute-api.cn-northwest-1.amazonaws.com.cn/dev"
        );
        let overridden = [parts.as_slice(), &[("AWS_URL_SUFFIX", "example.aws")]].concat();
        assert_eq!(
            config(&overridden).unwrap().endpoint.as_str(),
            "https://abc.execute-api.cn-northwest-1.example.aws/dev"
        );
    }

    #[test]
    fn require_principal_is_off_unless_set_and_must_be_a_boolean() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
        ];
        assert!(!config(&base).unwrap().require_principal);
        let on = [base.as_slice(), &[("REQUIRE_PRINCIPAL", "true")]].concat();
        assert!(config(&on).unwrap().require_principal);
        let typo = [base.as_slice(), &[("REQUIRE_PRINCIPAL", "yes")]].concat();
        assert!(
            config(&typo)
                .unwrap_err()
                .to_string()
                .starts_with("REQUIRE_PRINCIPAL = \"yes\"")
        );
    }

    #[test]
    fn broadcasts_are_queued_only_where_an_internal_queue_url_is_set() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
        ];
        assert_eq!(config(&base).unwrap().internal_queue_url, None);
        let blank = [base.as_slice(), &[("INTERNAL_QUEUE_URL", " ")]].concat();
        assert_eq!(config(&blank).unwrap().internal_queue_url, None);
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/ws-chat-dev-internal";
        let set = [base.as_slice(), &[("INTERNAL_QUEUE_URL", url)]].concat();
        assert_eq!(
            config(&set).unwrap().internal_queue_url.as_deref(),
            Some(url)
        );
    }

    #[test]
    fn the_notifier_client_is_the_signed_one_unless_set_and_must_be_known() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
        ];
        assert_eq!(
            config(&base).unwrap().notifier_client,
            NotifierClient::Signed
        );
        let sdk = [base.as_slice(), &[("NOTIFIER_CLIENT", "sdk")]].concat();
        assert_eq!(config(&sdk).unwrap().notifier_client, NotifierClient::Sdk);
        let typo = [base.as_slice(), &[("NOTIFIER_CLIENT", "hyper")]].concat();
        assert!(
            config(&typo)
                .unwrap_err()
                .to_string()
                .starts_with("NOTIFIER_CLIENT = \"hyper\"")
        );
    }

    #[test]
    fn no_endpoint_at_all_says_how_to_configure_one() {
        let e = config(&[("CONNECTIONS_TABLE", "t")]).unwrap_err();
        assert!(e.to_string().contains("MANAGEMENT_ENDPOINT"));
    }

    fn with_required(name: &str, value: &str) -> Result<ServiceConfig, ConfigError> {
        config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
            (name, value),
        ])
    }

    #[test]
    fn every_numeric_setting_out_of_its_range_stops_start_up_naming_the_variable() {
        let table = [
            (
                "PAGE_SIZE",
                "0",
                "must be a whole number between 1 and 10000",
            ),
            (
                "PAGE_SIZE",
                "10001",
                "must be a whole number between 1 and 10000",
            ),
            (
                "PAGE_SIZE",
                "-5",
                "must be a whole number between 1 and 10000",
            ),
            (
                "PAGE_SIZE",
                "many",
                "must be a whole number between 1 and 10000",
            ),
            (
                "LIST_SHARDS",
                "0",
                "must be a whole number between 1 and 256",
            ),
            (
                "LIST_SHARDS",
                "257",
                "must be a whole number between 1 and 256",
            ),
            (
                "LIST_SHARDS",
                "70000",
                "must be a whole number between 1 and 256",
            ),
            (
                "FANOUT_CONCURRENCY",
                "0",
                "must be a whole number between 1 and 512",
            ),
            (
                "FANOUT_CONCURRENCY",
                "513",
                "must be a whole number between 1 and 512",
            ),
            (
                "TTL_MARGIN_SECONDS",
                "86401",
                "must be a whole number between 0 and 86400",
            ),
            (
                "TTL_MARGIN_SECONDS",
                "18446744073709551615",
                "must be a whole number between 0 and 86400",
            ),
            (
                "TTL_MARGIN_SECONDS",
                "-1",
                "must be a whole number between 0 and 86400",
            ),
            (
                "MAX_ROOMS_PER_CONNECTION",
                "0",
                "must be a whole number between 1 and 99",
            ),
            (
                "MAX_ROOMS_PER_CONNECTION",
                "100",
                "must be a whole number between 1 and 99",
            ),
            (
                "PRESENCE_MAX_MEMBERS",
                "1001",
                "must be a whole number between 0 and 1000",
            ),
            (
                "INLINE_RECIPIENTS",
                "20001",
                "must be a whole number between 0 and 20000",
            ),
            (
                "INLINE_RECIPIENTS",
                "-1",
                "must be a whole number between 0 and 20000",
            ),
            (
                "JOB_SAFETY_MARGIN_MS",
                "4999",
                "must be a whole number between 5000 and 60000",
            ),
            (
                "JOB_SAFETY_MARGIN_MS",
                "60001",
                "must be a whole number between 5000 and 60000",
            ),
            (
                "ECHO_TO_SENDER",
                "yes",
                "provided string was not `true` or `false`",
            ),
        ];
        for (name, value, reason) in table {
            let message = with_required(name, value).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("{name} = ")) && message.contains(reason),
                "{name}={value}: {message}"
            );
        }
    }

    #[test]
    fn a_safety_margin_that_leaves_the_function_no_time_to_work_stops_start_up() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
            ("FUNCTION_TIMEOUT_SECONDS", "10"),
        ];
        let equal = [base.as_slice(), &[("JOB_SAFETY_MARGIN_MS", "10000")]].concat();
        let message = config(&equal).unwrap_err().to_string();
        assert!(
            message.starts_with("JOB_SAFETY_MARGIN_MS = \"10000\"")
                && message
                    .contains("below the function's timeout (FUNCTION_TIMEOUT_SECONDS = 10 s)"),
            "{message}"
        );
        let below = [base.as_slice(), &[("JOB_SAFETY_MARGIN_MS", "9999")]].concat();
        assert!(config(&below).is_ok());
    }

    #[test]
    fn the_smallest_job_margin_outlasts_one_post_and_the_enqueue_after_it() {
        let post = crate::apigateway::NotifierTimeouts::default();
        let crate::settings::Value::Number { min, .. } = settings::JOB_SAFETY_MARGIN_MS.value
        else {
            panic!("JOB_SAFETY_MARGIN_MS is a number");
        };
        let smallest = Duration::from_millis(min);
        assert!(smallest >= post.connect + post.read + Duration::from_secs(1));
        assert!(Settings::default().job_safety_margin >= smallest);
    }

    #[test]
    fn the_ends_of_every_range_are_accepted() {
        let table = [
            ("PAGE_SIZE", "1"),
            ("PAGE_SIZE", "10000"),
            ("LIST_SHARDS", "1"),
            ("LIST_SHARDS", "256"),
            ("FANOUT_CONCURRENCY", "1"),
            ("FANOUT_CONCURRENCY", "512"),
            ("TTL_MARGIN_SECONDS", "0"),
            ("TTL_MARGIN_SECONDS", "86400"),
            ("MAX_ROOMS_PER_CONNECTION", "1"),
            ("MAX_ROOMS_PER_CONNECTION", "99"),
            ("PRESENCE_MAX_MEMBERS", "0"),
            ("PRESENCE_MAX_MEMBERS", "1000"),
            ("INLINE_RECIPIENTS", "0"),
            ("INLINE_RECIPIENTS", "20000"),
            ("JOB_SAFETY_MARGIN_MS", "5000"),
            ("JOB_SAFETY_MARGIN_MS", "60000"),
        ];
        for (name, value) in table {
            assert!(with_required(name, value).is_ok(), "{name}={value}");
        }
        let c = with_required("MAX_ROOMS_PER_CONNECTION", "99").unwrap();
        assert_eq!(c.settings.max_rooms_per_connection, 99);
        let c = with_required("INLINE_RECIPIENTS", "250").unwrap();
        assert_eq!(c.settings.inline_recipients, 250);
        let c = with_required("JOB_SAFETY_MARGIN_MS", "7500").unwrap();
        assert_eq!(c.settings.job_safety_margin, Duration::from_millis(7_500));
    }

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let c = config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
        ])
        .unwrap();
        assert_eq!(
            c.settings,
            Settings {
                rate_limit: DEFAULT_RATE_LIMIT,
                unmetered_rate_limit: RateLimit {
                    per_second: 5,
                    burst: 20
                },
                ..Settings::default()
            }
        );
        assert_eq!(c.dynamo.table, "t");
    }

    #[test]
    fn the_rate_limit_is_read_turned_off_by_a_zero_and_a_bad_value_is_named() {
        let base = [
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
        ];
        let set = [
            base.as_slice(),
            &[("RATE_LIMIT_PER_SECOND", "5"), ("RATE_LIMIT_BURST", "8")],
        ]
        .concat();
        assert_eq!(
            config(&set).unwrap().settings.rate_limit,
            RateLimit {
                per_second: 5,
                burst: 8
            }
        );
        let off = [base.as_slice(), &[("RATE_LIMIT_PER_SECOND", "0")]].concat();
        assert!(!config(&off).unwrap().settings.rate_limit.is_on());
        let negative = [base.as_slice(), &[("RATE_LIMIT_BURST", "-1")]].concat();
        assert!(
            config(&negative)
                .unwrap_err()
                .to_string()
                .starts_with("RATE_LIMIT_BURST = \"-1\""),
        );
    }
}
