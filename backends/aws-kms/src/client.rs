//! The KMS client: region and credentials from the standard AWS chain, an optional endpoint, and
//! bounded retries and timeouts so that a throttled or unreachable KMS costs a caller at most
//! [`AwsKmsConfig::call_timeout`], never a hang.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::config::ProvideCredentials;
use aws_sdk_kms::Client;

use crate::fault::from_sdk;
use crate::AwsKmsConfig;

/// Why the backend could not start; the message says which setting to look at.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("aws-kms: no AWS region configured, and the standard AWS chain (environment, profile) names none")]
    NoRegion,
    #[error("aws-kms: no usable AWS credentials (environment, profile, SSO, container or instance role): {0}")]
    NoCredentials(String),
    #[error("aws-kms: KMS in region {region} ({endpoint}) refused or did not answer a test call; check the region, endpoint and credentials: {error}")]
    Unreachable {
        region: String,
        endpoint: String,
        error: String,
    },
}

/// Builds the client and proves it works with one cheap call (`ListKeys`, one result).
pub(crate) async fn connect(config: &AwsKmsConfig) -> Result<Client, StartError> {
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(config.call_timeout / config.max_attempts.max(1))
        .operation_timeout(config.call_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let region = sdk.region().ok_or(StartError::NoRegion)?.to_string();
    let credentials = sdk
        .credentials_provider()
        .ok_or_else(|| StartError::NoCredentials("no credentials provider".into()))?;
    credentials
        .provide_credentials()
        .await
        .map_err(|e| StartError::NoCredentials(e.to_string()))?;
    let endpoint = sdk.endpoint_url().map_or_else(
        || "endpoint from AWS_ENDPOINT_URL_KMS or AWS's own".to_owned(),
        str::to_owned,
    );
    let client = Client::new(&sdk);
    client
        .list_keys()
        .limit(1)
        .send()
        .await
        .map_err(|e| StartError::Unreachable {
            region,
            endpoint,
            error: from_sdk("ListKeys", e).to_string(),
        })?;
    Ok(client)
}
