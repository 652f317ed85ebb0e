//! A state change and its audit records commit together, by construction: a [`Change`] is a
//! transaction whose only ways to commit take the records. Dropping one rolls it back.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use super::audit::insert_many;
use super::StoreError;
use crate::domain::AuditRecord;

pub(super) struct Change {
    tx: Transaction<'static, Any>,
}

impl Change {
    pub(super) async fn begin(pool: &AnyPool) -> Result<Change, StoreError> {
        Ok(Change {
            tx: pool.begin().await?,
        })
    }

    /// Appends `records` to the audit chain and commits them with the change.
    pub(super) async fn commit(mut self, records: &[AuditRecord]) -> Result<(), StoreError> {
        insert_many(&mut self.tx, records).await?;
        self.tx.commit().await?;
        Ok(())
    }

    /// Ends a conditional change: commits it with `records` when it `happened`, otherwise
    /// rolls it back (nothing changed, so nothing is recorded). Returns `happened`.
    pub(super) async fn commit_if(
        self,
        happened: bool,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        if happened {
            self.commit(records).await?;
        }
        Ok(happened)
    }
}

impl Deref for Change {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Change {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}
