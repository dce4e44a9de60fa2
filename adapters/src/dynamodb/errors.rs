use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use domain::RepositoryError;

/// Maps any SDK failure to the domain's error, keeping the whole cause chain as text.
pub fn repository_error<E, R>(err: SdkError<E, R>) -> RepositoryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let throttled = matches!(
        err.code(),
        Some(
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
        )
    );
    let text = DisplayErrorContext(&err).to_string();
    if throttled {
        RepositoryError::Throttled(text)
    } else {
        RepositoryError::Unavailable(text)
    }
}
