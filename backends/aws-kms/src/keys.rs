//! Key management: creating asymmetric KMS keys (for signing, decryption or key agreement) tied
//! to signet's key ids by tag, finding them again, naming them with aliases, and scheduling their
//! deletion.
//!
//! Every key carries the tag `signet:key-id` from `CreateKey` on, and the alias
//! `alias/signet/key/<key-id>` right after, so that [`locate`] finds it with one `DescribeKey`
//! (a crash between generation and recording: signet adopts the key). A crash in the moment
//! between `CreateKey` and the alias leaves a key only the tag names: [`signet_keys`], a scan of
//! the account's keys at start, lists it and signet reports it in its log (it deletes nothing by
//! itself: a restored database can make live keys look unrecorded). For people in the AWS
//! console the ring's names follow: `alias/signet/<ring>/<key-id>` per key and
//! `alias/signet/<ring>/active` on its signing key. Aliases are unique per account and region,
//! so one signet deployment owns the `alias/signet/` names there.

use aws_sdk_kms::types::{KeyState, KeyUsageType, Tag};
use aws_sdk_kms::Client;
use signet_core::{KeyId, KeySpec, KeyUse, ProviderError};

use crate::fault::from_sdk;

pub(crate) const KEY_ID_TAG: &str = "signet:key-id";
pub(crate) const RING_TAG: &str = "signet:ring";

/// The KMS key spec for one of signet's.
pub(crate) fn kms_spec(spec: KeySpec) -> aws_sdk_kms::types::KeySpec {
    use aws_sdk_kms::types::KeySpec as Kms;
    match spec {
        KeySpec::EcP256 => Kms::EccNistP256,
        KeySpec::EcP384 => Kms::EccNistP384,
        KeySpec::Rsa2048 => Kms::Rsa2048,
        KeySpec::Rsa3072 => Kms::Rsa3072,
        KeySpec::Ed25519 => Kms::EccNistEdwards25519,
    }
}

/// signet's key spec for a KMS one, if signet has it.
pub(crate) fn signet_spec(spec: &aws_sdk_kms::types::KeySpec) -> Option<KeySpec> {
    use aws_sdk_kms::types::KeySpec as Kms;
    Some(match spec {
        Kms::EccNistP256 => KeySpec::EcP256,
        Kms::EccNistP384 => KeySpec::EcP384,
        Kms::Rsa2048 => KeySpec::Rsa2048,
        Kms::Rsa3072 => KeySpec::Rsa3072,
        Kms::EccNistEdwards25519 => KeySpec::Ed25519,
        _ => return None,
    })
}

fn tag(key: &str, value: &str) -> Result<Tag, ProviderError> {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .map_err(|e| ProviderError::Backend(format!("aws-kms: building a tag: {e}")))
}

fn key_alias(id: &KeyId) -> String {
    format!("alias/signet/key/{id}")
}

/// Creates a key of `spec` for `usage` tagged with `id`; returns its ARN. [`alias`] comes next.
/// A signing key is `SIGN_VERIFY`; an encryption key is `ENCRYPT_DECRYPT` if it is RSA (it
/// decrypts RSA-OAEP) and `KEY_AGREEMENT` if it is EC (ECDH): KMS keys have exactly one usage.
pub(crate) async fn create(
    kms: &Client,
    id: &KeyId,
    spec: KeySpec,
    usage: KeyUse,
) -> Result<String, ProviderError> {
    let key_usage = match (usage, spec) {
        (KeyUse::Sign, _) => KeyUsageType::SignVerify,
        (KeyUse::Encrypt, KeySpec::Rsa2048 | KeySpec::Rsa3072) => KeyUsageType::EncryptDecrypt,
        (KeyUse::Encrypt, _) => KeyUsageType::KeyAgreement,
    };
    let created = kms
        .create_key()
        .key_usage(key_usage)
        .key_spec(kms_spec(spec))
        .description(format!("signet key {id}"))
        .tags(tag(KEY_ID_TAG, &id.0)?)
        .send()
        .await
        .map_err(|e| match from_sdk("CreateKey", e) {
            // KMS answers an unknown key spec with a validation error: say what it means here.
            ProviderError::Backend(detail) | ProviderError::Unsupported(detail)
                if spec == KeySpec::Ed25519 =>
            {
                ProviderError::Unsupported(format!(
                    "this KMS does not create ECC_NIST_EDWARDS25519 keys, so Ed25519 rings cannot use the aws-kms backend here ({detail})"
                ))
            }
            other => other,
        })?;
    let arn = created
        .key_metadata()
        .and_then(|m| m.arn())
        .map(str::to_owned)
        .ok_or_else(|| {
            ProviderError::Backend("aws-kms CreateKey: no key ARN in the answer".into())
        })?;
    Ok(arn)
}

/// Gives the key at `arn` the alias [`locate`] finds it by.
pub(crate) async fn alias(kms: &Client, id: &KeyId, arn: &str) -> Result<(), ProviderError> {
    point_alias(kms, &key_alias(id), arn).await
}

/// The ARN of the usable key made for `id`, found by its alias.
pub(crate) async fn locate(kms: &Client, id: &KeyId) -> Result<Option<String>, ProviderError> {
    match describe(kms, &key_alias(id)).await? {
        Some((arn, true)) => Ok(Some(arn)),
        _ => Ok(None),
    }
}

/// Every signet key that is not pending deletion, as (signet key id, ARN).
pub(crate) async fn signet_keys(kms: &Client) -> Result<Vec<(KeyId, String)>, ProviderError> {
    let mut found = Vec::new();
    let mut pages = kms.list_keys().limit(1000).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("ListKeys", e))?;
        for entry in page.keys() {
            let (Some(key), Some(arn)) = (entry.key_id(), entry.key_arn()) else {
                continue;
            };
            if let Some(id) = tag_value(kms, key, KEY_ID_TAG).await? {
                if let Some((_, true)) = describe(kms, key).await? {
                    found.push((KeyId(id), arn.to_owned()));
                }
            }
        }
    }
    Ok(found)
}

async fn tag_value(kms: &Client, key: &str, name: &str) -> Result<Option<String>, ProviderError> {
    let tags = match kms.list_resource_tags().key_id(key).send().await {
        Ok(tags) => tags,
        // Deleted since ListKeys named it.
        Err(e) => match from_sdk("ListResourceTags", e) {
            ProviderError::NotFound(_) => return Ok(None),
            other => return Err(other),
        },
    };
    Ok(tags
        .tags()
        .iter()
        .find(|t| t.tag_key() == name)
        .map(|t| t.tag_value().to_owned()))
}

/// The key's ARN and whether it can still be used (it is not pending deletion); `None` if KMS
/// has no such key (or alias).
async fn describe(kms: &Client, key: &str) -> Result<Option<(String, bool)>, ProviderError> {
    let described = match kms.describe_key().key_id(key).send().await {
        Ok(described) => described,
        Err(e) => match from_sdk("DescribeKey", e) {
            ProviderError::NotFound(_) => return Ok(None),
            other => return Err(other),
        },
    };
    Ok(described.key_metadata().and_then(|m| {
        let usable = !matches!(
            m.key_state(),
            Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion) | None
        );
        Some((m.arn()?.to_owned(), usable))
    }))
}

/// Schedules the key's deletion after `window_days`; returns the deletion date (ms since the
/// epoch), also when it was already scheduled, and `None` when KMS no longer has the key.
pub(crate) async fn schedule_deletion(
    kms: &Client,
    arn: &str,
    window_days: i32,
) -> Result<Option<i64>, ProviderError> {
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(arn)
        .pending_window_in_days(window_days)
        .send()
        .await;
    let date = match scheduled {
        Ok(answer) => answer.deletion_date().copied(),
        Err(e) => match from_sdk("ScheduleKeyDeletion", e) {
            // Already pending deletion (a retry after a crash): report the date KMS keeps.
            ProviderError::NotFound(_) => match kms.describe_key().key_id(arn).send().await {
                Ok(described) => described
                    .key_metadata()
                    .and_then(|m| m.deletion_date())
                    .copied(),
                Err(e) => match from_sdk("DescribeKey", e) {
                    ProviderError::NotFound(_) => return Ok(None),
                    other => return Err(other),
                },
            },
            other => return Err(other),
        },
    };
    Ok(date.and_then(|d| d.to_millis().ok()))
}

/// Tags the key with its ring and points the ring's aliases at it (see the module docs).
pub(crate) async fn annotate(
    kms: &Client,
    id: &KeyId,
    arn: &str,
    ring: &str,
    active: bool,
) -> Result<(), ProviderError> {
    kms.tag_resource()
        .key_id(arn)
        .tags(tag(RING_TAG, ring)?)
        .send()
        .await
        .map_err(|e| from_sdk("TagResource", e))?;
    point_alias(kms, &format!("alias/signet/{ring}/{id}"), arn).await?;
    if active {
        point_alias(kms, &format!("alias/signet/{ring}/active"), arn).await?;
    }
    Ok(())
}

/// Makes `alias` name the key at `arn`, creating it or moving it.
async fn point_alias(kms: &Client, alias: &str, arn: &str) -> Result<(), ProviderError> {
    // The target is the key id (the ARN's last part): AWS takes an ARN too, but LocalStack's
    // UpdateAlias stores an ARN target verbatim and the alias then resolves to no key.
    let target = arn.rsplit_once('/').map_or(arn, |(_, id)| id);
    let updated = kms
        .update_alias()
        .alias_name(alias)
        .target_key_id(target)
        .send()
        .await;
    match updated.map_err(|e| from_sdk("UpdateAlias", e)) {
        Ok(_) => Ok(()),
        Err(ProviderError::NotFound(_)) => kms
            .create_alias()
            .alias_name(alias)
            .target_key_id(target)
            .send()
            .await
            .map(drop)
            .map_err(|e| from_sdk("CreateAlias", e)),
        Err(e) => Err(e),
    }
}
