//! signet's AWS KMS backend: asymmetric KMS keys that never leave KMS.
//!
//! - Signing keys (`KeyUsage=SIGN_VERIFY`): ES256 on `ECC_NIST_P256`, ES384 on `ECC_NIST_P384`,
//!   RS256/PS256 on `RSA_2048` or `RSA_3072`, Ed25519 on `ECC_NIST_EDWARDS25519` where the KMS
//!   offers it (a KMS that does not refuses the ring at creation with `Unsupported`). A key's
//!   reference is `awskms:<key ARN>`.
//! - Encryption keys (`encryption.rs`): RSA keys with `KeyUsage=ENCRYPT_DECRYPT` decrypt RSA-OAEP
//!   (`kms:Decrypt`), EC keys with `KeyUsage=KEY_AGREEMENT` agree on ECDH secrets
//!   (`kms:DeriveSharedSecret`); a KMS key has one usage, so neither can sign.
//! - Rotation is signet's: AWS KMS never rotates asymmetric keys, so each rotation creates a new
//!   key, and destroying an old one schedules its deletion after a waiting period (7-30 days).
//! - Public keys and what the key is for come from `GetPublicKey` once per key and are cached:
//!   AWS allows far fewer `GetPublicKey` than `Sign` calls.
//! - Throttling and transient failures are retried with backoff by the SDK, within a per-call
//!   timeout (`client.rs`); what still fails is `Unavailable`, which signet answers with 503.
//! - A key created but never recorded (a crash between `CreateKey` and the database) carries the
//!   `signet:key-id` tag and alias: [`KeyProvider::locate`] finds it so signet adopts it, and
//!   [`KeyProvider::inventory`] (a tag scan) lists it so signet reports it at start; signet does
//!   not delete it by itself (see `keys.rs`).
//!
//! Credentials, region and endpoint come from the standard AWS chain (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, SSO, container and instance roles,
//! `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`), unless [`AwsKmsConfig`] names a region or endpoint.
//! The SDK holds the credentials; signet never sees, logs or stores them.

mod client;
mod der;
mod encryption;
mod fault;
mod keys;
mod public;
mod sign;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use signet_core::{
    Algorithm, GeneratedKey, KeyId, KeyProvider, KeyRef, KeySpec, KeyUse, OaepHash, ProviderError,
    PublicKey, Zeroizing,
};

pub use client::StartError;
use public::KmsPublicKey;

const REFERENCE_PREFIX: &str = "awskms:";

/// What the KMS backend needs beyond the standard AWS chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsKmsConfig {
    /// `None`: the region from the AWS chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// `None`: `AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL`, else AWS's own endpoint.
    pub endpoint_url: Option<String>,
    /// Days between destroying a key and KMS deleting it (`ScheduleKeyDeletion`): 7 to 30.
    pub deletion_window_days: i32,
    /// The longest one KMS call may take, retries included.
    pub call_timeout: Duration,
    /// Attempts per call (the first and its retries) on throttling and transient errors.
    pub max_attempts: u32,
}

impl Default for AwsKmsConfig {
    fn default() -> AwsKmsConfig {
        AwsKmsConfig {
            region: None,
            endpoint_url: None,
            deletion_window_days: 30,
            call_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

/// The AWS KMS backend.
pub struct AwsKmsProvider {
    kms: aws_sdk_kms::Client,
    deletion_window_days: i32,
    public_keys: RwLock<HashMap<String, Arc<KmsPublicKey>>>,
}

impl AwsKmsProvider {
    /// Connects to KMS and checks the region, credentials and endpoint with one call, so a
    /// misconfiguration stops the start with a message instead of failing the first ring.
    pub async fn open(config: &AwsKmsConfig) -> Result<AwsKmsProvider, StartError> {
        Ok(AwsKmsProvider {
            kms: client::connect(config).await?,
            deletion_window_days: config.deletion_window_days,
            public_keys: RwLock::new(HashMap::new()),
        })
    }

    /// The SDK client this backend uses (for tools and tests that look into KMS directly).
    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.kms
    }

    async fn public(&self, reference: &KeyRef) -> Result<Arc<KmsPublicKey>, ProviderError> {
        let arn = arn(reference)?;
        if let Some(key) = self
            .public_keys
            .read()
            .expect("key cache poisoned")
            .get(arn)
        {
            return Ok(key.clone());
        }
        let key = Arc::new(public::fetch(&self.kms, arn).await?);
        self.public_keys
            .write()
            .expect("key cache poisoned")
            .insert(arn.to_owned(), key.clone());
        Ok(key)
    }
}

fn arn(reference: &KeyRef) -> Result<&str, ProviderError> {
    reference
        .0
        .strip_prefix(REFERENCE_PREFIX)
        .ok_or_else(|| ProviderError::NotFound(format!("not an aws-kms key: {:?}", reference.0)))
}

fn reference(arn: &str) -> KeyRef {
    KeyRef(format!("{REFERENCE_PREFIX}{arn}"))
}

#[async_trait]
impl KeyProvider for AwsKmsProvider {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    async fn generate(
        &self,
        id: &KeyId,
        spec: KeySpec,
        usage: KeyUse,
    ) -> Result<GeneratedKey, ProviderError> {
        if !usage.accepts(spec) {
            return Err(ProviderError::Unsupported(format!(
                "aws-kms: a {} key cannot be an encryption key",
                spec.as_str()
            )));
        }
        let arn = keys::create(&self.kms, id, spec, usage).await?;
        let reference = reference(&arn);
        let finished = async {
            keys::alias(&self.kms, id, &arn).await?;
            self.public(&reference).await
        };
        match finished.await {
            Ok(key) => Ok(GeneratedKey {
                reference,
                public_key: key.public_key.clone(),
            }),
            Err(error) => {
                // signet drops its intent record on failure: leave no key that nothing names.
                if let Err(e) =
                    keys::schedule_deletion(&self.kms, &arn, self.deletion_window_days).await
                {
                    tracing::warn!(error = %e, %arn, "a half-made key is left for the start-up report");
                }
                Err(error)
            }
        }
    }

    async fn locate(&self, id: &KeyId) -> Result<Option<KeyRef>, ProviderError> {
        Ok(keys::locate(&self.kms, id)
            .await?
            .map(|arn| reference(&arn)))
    }

    async fn inventory(&self) -> Result<Vec<KeyId>, ProviderError> {
        Ok(keys::signet_keys(&self.kms)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn public_key(&self, reference: &KeyRef) -> Result<PublicKey, ProviderError> {
        Ok(self.public(reference).await?.public_key.clone())
    }

    async fn sign(
        &self,
        reference: &KeyRef,
        alg: Algorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, ProviderError> {
        let key = self.public(reference).await?;
        sign::sign(&self.kms, arn(reference)?, &key, alg, message).await
    }

    async fn decrypt(
        &self,
        reference: &KeyRef,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let key = self.public(reference).await?;
        encryption::decrypt(&self.kms, arn(reference)?, &key, hash, ciphertext).await
    }

    async fn agree(
        &self,
        reference: &KeyRef,
        peer: &PublicKey,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let key = self.public(reference).await?;
        encryption::agree(&self.kms, arn(reference)?, &key, peer).await
    }

    async fn destroy(&self, reference: &KeyRef) -> Result<Option<i64>, ProviderError> {
        let arn = arn(reference)?;
        self.public_keys
            .write()
            .expect("key cache poisoned")
            .remove(arn);
        keys::schedule_deletion(&self.kms, arn, self.deletion_window_days).await
    }

    async fn annotate(
        &self,
        id: &KeyId,
        reference: &KeyRef,
        ring: &str,
        active: bool,
    ) -> Result<(), ProviderError> {
        keys::annotate(&self.kms, id, arn(reference)?, ring, active).await
    }
}
