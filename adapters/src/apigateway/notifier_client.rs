//! Which `@connections` client a process uses: the signed one by default (a sixth of the SDK's
//! CPU per post, BENCHMARKS.md, "CPU per post"), the SDK-based reference on request.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_config::SdkConfig;
use domain::ClientNotifier;

use super::{
    ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts, SignedNotifier, SignedNotifierError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifierClient {
    /// `SignedNotifier`: hyper and its own SigV4 (`sigv4.rs`).
    #[default]
    Signed,
    /// `ApiGatewayNotifier`: aws-sdk-apigatewaymanagement.
    Sdk,
}

/// When the notifier reads the root certificates of an https endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootsRead {
    /// At its first https connection: for a process that may never post.
    AtFirstPost,
    /// From now on, on a thread of their own: for a Lambda whose events post, during its init.
    /// (The SDK-based notifier's roots are the SDK client's, read by `sdk_http.rs`.)
    InBackground,
}

impl NotifierClient {
    pub fn build(
        self,
        sdk: &SdkConfig,
        endpoint: &ManagementEndpoint,
        timeouts: NotifierTimeouts,
        roots: RootsRead,
    ) -> Result<Arc<dyn ClientNotifier>, SignedNotifierError> {
        Ok(match self {
            Self::Signed => {
                let notifier = SignedNotifier::new(sdk, endpoint, timeouts)?;
                if roots == RootsRead::InBackground {
                    notifier.read_roots_in_background();
                }
                Arc::new(notifier)
            }
            Self::Sdk => Arc::new(ApiGatewayNotifier::new(sdk, endpoint, timeouts)),
        })
    }
}

const SIGNED: &str = "signed";
const SDK: &str = "sdk";

impl NotifierClient {
    /// Every client's name, as `NOTIFIER_CLIENT` and `--notifier-client` take it.
    pub const NAMES: &[&str] = &[SIGNED, SDK];
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notifier client {0:?}: expected one of {names}", names = NotifierClient::NAMES.join(", "))]
pub struct UnknownNotifierClient(String);

impl FromStr for NotifierClient {
    type Err = UnknownNotifierClient;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            SIGNED => Ok(Self::Signed),
            SDK => Ok(Self::Sdk),
            other => Err(UnknownNotifierClient(other.to_string())),
        }
    }
}

impl fmt::Display for NotifierClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signed => SIGNED,
            Self::Sdk => SDK,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_name_reads_back_as_itself_and_others_are_refused() {
        for client in [NotifierClient::Signed, NotifierClient::Sdk] {
            assert_eq!(client.to_string().parse(), Ok(client));
        }
        assert!("hyper".parse::<NotifierClient>().is_err());
    }
}
