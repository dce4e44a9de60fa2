//! Configuration from the environment, checked at start-up with messages that name the variable.

use std::time::Duration;

use domain::{RateLimit, Settings};

use crate::apigateway::{EndpointError, ManagementEndpoint, url_suffix_for};
use crate::dynamodb::DynamoSettings;

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
    /// Refuse a `$connect` that carries no authorizer principal (`REQUIRE_PRINCIPAL`): set when
    /// the stack deploys the authorizer, so a route that lost it fails closed.
    pub require_principal: bool,
}

impl ServiceConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table = get("CONNECTIONS_TABLE")
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::Missing("CONNECTIONS_TABLE"))?;
        let endpoint = match (get("MANAGEMENT_ENDPOINT"), get("API_ID"), get("STAGE")) {
            (Some(url), _, _) if !url.is_empty() => ManagementEndpoint::parse(&url)?,
            (_, Some(api), Some(stage)) => {
                let region = get("AWS_REGION").ok_or(ConfigError::Missing("AWS_REGION"))?;
                let suffix =
                    get("AWS_URL_SUFFIX").unwrap_or_else(|| url_suffix_for(&region).to_string());
                ManagementEndpoint::for_api_with_suffix(&api, &region, &suffix, &stage)?
            }
            _ => return Err(ConfigError::NoEndpoint),
        };
        let defaults = Settings::default();
        let mut dynamo = DynamoSettings::new(table);
        dynamo.page_size = parse_or(&get, "PAGE_SIZE", dynamo.page_size)?;
        dynamo.list_shards = parse_or(&get, "LIST_SHARDS", dynamo.list_shards)?;
        let settings = Settings {
            fanout_concurrency: parse_or(&get, "FANOUT_CONCURRENCY", defaults.fanout_concurrency)?,
            ttl_margin: Duration::from_secs(parse_or(
                &get,
                "TTL_MARGIN_SECONDS",
                defaults.ttl_margin.as_secs(),
            )?),
            max_rooms_per_connection: parse_or(
                &get,
                "MAX_ROOMS_PER_CONNECTION",
                defaults.max_rooms_per_connection,
            )?,
            echo_to_sender: parse_or(&get, "ECHO_TO_SENDER", defaults.echo_to_sender)?,
            rate_limit: rate_limit(&get)?,
            ..defaults
        };
        if dynamo.page_size < 1 || dynamo.list_shards < 1 {
            return Err(ConfigError::Invalid {
                name: "PAGE_SIZE/LIST_SHARDS",
                value: format!("{}/{}", dynamo.page_size, dynamo.list_shards),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            dynamo,
            endpoint,
            settings,
            require_principal: parse_or(&get, "REQUIRE_PRINCIPAL", false)?,
        })
    }
}

/// The Lambdas' rate limit when none is configured: see BENCHMARKS.md, "Rate limit", for why.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 10,
    burst: 20,
};

/// `RATE_LIMIT_PER_SECOND` and `RATE_LIMIT_BURST`, each a whole number; 0 in either turns it off.
fn rate_limit(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimit, ConfigError> {
    Ok(RateLimit {
        per_second: parse_or(get, "RATE_LIMIT_PER_SECOND", DEFAULT_RATE_LIMIT.per_second)?,
        burst: parse_or(get, "RATE_LIMIT_BURST", DEFAULT_RATE_LIMIT.burst)?,
    })
}

fn parse_or<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
    fn no_endpoint_at_all_says_how_to_configure_one() {
        let e = config(&[("CONNECTIONS_TABLE", "t")]).unwrap_err();
        assert!(e.to_string().contains("MANAGEMENT_ENDPOINT"));
    }

    #[test]
    fn bad_numbers_name_their_variable() {
        let e = config(&[
            ("CONNECTIONS_TABLE", "t"),
            ("MANAGEMENT_ENDPOINT", "https://x/prod"),
            ("FANOUT_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().starts_with("FANOUT_CONCURRENCY = \"0\""),
            "{e}"
        );
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
