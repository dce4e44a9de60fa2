//! Where the `@connections` API lives. Always from configuration: the `domainName` of an event
//! names a custom domain or the local gateway just as happily, and has no stage.

use std::fmt;

/// `https://{apiId}.execute-api.{region}.{urlSuffix}/{stage}`, a custom domain with its base path
/// (which may be empty), or the local gateway's `http://127.0.0.1:3001/{stage}`. Never ends with
/// `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementEndpoint(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "the management endpoint {0:?} must start with https:// (or http:// for a local gateway)"
    )]
    NoScheme(String),
    #[error("the management endpoint {0:?} has no host")]
    NoHost(String),
    #[error(
        "the management endpoint {0:?} has no stage path (e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod); only a custom domain may have an empty base path"
    )]
    NoStage(String),
    #[error("{field} must not be empty or contain '/' or spaces, got {value:?}")]
    BadPart { field: &'static str, value: String },
}

impl ManagementEndpoint {
    /// Parses a full URL (a custom domain, or the local gateway).
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| EndpointError::NoScheme(url.to_string()))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(EndpointError::NoHost(url.to_string()));
        }
        // API Gateway's own host always needs the stage; a custom domain mapped with an empty
        // base path serves `@connections` at its root.
        if path.is_empty() && host.contains(".execute-api.") {
            return Err(EndpointError::NoStage(url.to_string()));
        }
        Ok(Self(trimmed.to_string()))
    }

    /// Builds the endpoint API Gateway gives every WebSocket API, in `region`'s partition.
    pub fn for_api(api_id: &str, region: &str, stage: &str) -> Result<Self, EndpointError> {
        Self::for_api_with_suffix(api_id, region, url_suffix_for(region), stage)
    }

    /// Builds the endpoint with an explicit DNS suffix (CloudFormation's `AWS::URLSuffix`), for a
    /// partition `url_suffix_for` does not know.
    pub fn for_api_with_suffix(
        api_id: &str,
        region: &str,
        url_suffix: &str,
        stage: &str,
    ) -> Result<Self, EndpointError> {
        for (field, value) in [
            ("API id", api_id),
            ("region", region),
            ("URL suffix", url_suffix),
            ("stage", stage),
        ] {
            if value.is_empty() || value.contains(['/', ' ']) {
                return Err(EndpointError::BadPart {
                    field,
                    value: value.to_string(),
                });
            }
        }
        Self::parse(&format!(
            "https://{api_id}.execute-api.{region}.{url_suffix}/{stage}"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The DNS suffix of AWS endpoints in `region`'s partition, as CloudFormation's `AWS::URLSuffix`
/// gives it: `amazonaws.com.cn` in the China regions, `amazonaws.com` elsewhere. Other partitions
/// set `AWS_URL_SUFFIX` (see `ServiceConfig`).
pub fn url_suffix_for(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

impl fmt::Display for ManagementEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_endpoint_is_built_with_scheme_and_stage() {
        let e = ManagementEndpoint::for_api("abc123", "eu-west-1", "prod").unwrap();
        assert_eq!(
            e.as_str(),
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
        );
    }

    #[test]
    fn the_china_partition_gets_its_own_url_suffix() {
        let e = ManagementEndpoint::for_api("abc123", "cn-north-1", "prod").unwrap();
        assert_eq!(
            e.as_str(),
            "https://abc123.execute-api.cn-north-1.amazonaws.com.cn/prod"
        );
    }

    #[test]
    fn an_explicit_url_suffix_wins() {
        let e = ManagementEndpoint::for_api_with_suffix("abc", "eu-x-1", "example.aws", "prod")
            .unwrap();
        assert_eq!(
            e.as_str(),
            "https://abc.execute-api.eu-x-1.example.aws/prod"
        );
        assert!(matches!(
            ManagementEndpoint::for_api_with_suffix("abc", "eu-west-1", "", "prod"),
            Err(EndpointError::BadPart {
                field: "URL suffix",
                ..
            })
        ));
    }

    #[test]
    fn a_custom_domain_mapped_with_an_empty_base_path_is_accepted() {
        let e = ManagementEndpoint::parse("https://ws.example.com/").unwrap();
        assert_eq!(e.as_str(), "https://ws.example.com");
    }

    #[test]
    fn custom_domains_keep_their_base_path_and_lose_a_trailing_slash() {
        let e = ManagementEndpoint::parse("https://ws.example.com/chat/").unwrap();
        assert_eq!(e.as_str(), "https://ws.example.com/chat");
    }

    #[test]
    fn a_bare_domain_name_is_refused_with_a_hint() {
        assert!(matches!(
            ManagementEndpoint::parse("abc123.execute-api.eu-west-1.amazonaws.com/prod"),
            Err(EndpointError::NoScheme(_))
        ));
        assert!(matches!(
            ManagementEndpoint::parse("https://abc123.execute-api.eu-west-1.amazonaws.com"),
            Err(EndpointError::NoStage(_))
        ));
        assert!(matches!(
            ManagementEndpoint::parse("https:///prod"),
            Err(EndpointError::NoHost(_))
        ));
        assert!(matches!(
            ManagementEndpoint::for_api("abc", "eu-west-1", ""),
            Err(EndpointError::BadPart { field: "stage", .. })
        ));
    }
}
