//! Audit records: a hash chain, appended, never updated. Signatures arrive in batches (one
//! transaction for many concurrent requests, see `crate::audit`); state changes write theirs
//! inside their own transaction.
//!
//! The chain head (`audit_chain`, one row) holds the newest record's `seq` and hash; every append
//! moves it forward by the number of records: that UPDATE locks the row until the transaction ends, so appends from every replica
//! are serialised, each takes the next `seq`s without gaps, and a rollback gives them back. Each
//! record's `hash` is `SHA-256(previous hash || canonical record)` (see [`StoredAuditRecord::expected_hash`]); the
//! migration `0020_audit_chain.sql` documents the canonical form for people who check it in SQL.
//!
//! An append moves the head and inserts its records in one round trip ([`append_at`]): the
//! head moves only if it is still where the append expects it (`WHERE seq = .. AND hash = ..`),
//! and only then are the records inserted and the keys' `last_token_exp` raised. A store
//! remembers the head its last append left ([`HeadHint`]) and chains the next batch onto it: one
//! round trip where reading the head, writing it back, inserting and updating the keys took four.
//! When another writer moved the head meanwhile, that round trip changes nothing; the append then
//! takes the head's lock and reads it, and goes there. While other writers append too, the head
//! has most likely moved again by the next batch: an append that found another writer's records
//! after the head it knew makes the store's next one take the lock first, until one finds the head
//! where the store left it. Under the lock, an append is three round trips (lock, append,
//! `COMMIT`): that is how long it keeps other replicas waiting.
//!
//! The audit writer's batch of plain signatures goes in one round trip with its transaction
//! ([`append_alone`]): on Postgres its one statement is its own transaction, on SQLite its
//! statements go between `BEGIN IMMEDIATE` and `COMMIT` in the same call. It is whole because
//! it changes nothing unless the head is where it expects it and every key of the batch still
//! signs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, ConnectOptions, Connection, Row};

use super::change::Change;
use super::{Dialect, Store, StoreError, ACQUIRE_TIMEOUT};
use serde_json::Value;

use crate::domain::{Action, AuditEvent, AuditQuery, AuditRecord, Kid, RingName, UnixMillis};

/// An audit record as stored: its place in the chain, its exact detail text and its hash
/// (`None` only for records written before the chain existed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAuditRecord {
    pub seq: i64,
    pub time: UnixMillis,
    pub action: String,
    pub principal: String,
    pub ring: Option<String>,
    pub kid: Option<String>,
    pub detail: String,
    pub hash: Option<String>,
}

/// The newest record of the chain and where the chain starts.
#[derive(Clone, Debug)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
    /// Records below this `seq` predate the chain and carry no hash.
    pub start_seq: i64,
}

/// The hash "before" the first chained record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl StoredAuditRecord {
    /// This record's hash as it should be, chained from `prev`: `hex(SHA-256(prev || canonical))`,
    /// where `prev` is the previous record's hash as bytes and the canonical record is each of
    /// seq, time, action, principal, ring, kid, detail as `<byte length>:<text>`, or `-` when
    /// NULL. `None` if `prev` is not 64 hex digits.
    pub fn expected_hash(&self, prev: &str) -> Option<String> {
        let prev = hex_decode(prev)?;
        let hash = chain_hash(
            &prev,
            self.seq,
            self.time,
            [
                Some(&self.action),
                Some(&self.principal),
                self.ring.as_deref(),
                self.kid.as_deref(),
                Some(&self.detail),
            ],
        );
        Some(hex_encode(&hash))
    }
}

/// The chain's hash of one record (see [`StoredAuditRecord::expected_hash`]): `fields` are
/// action, principal, ring, kid and detail.
fn chain_hash(prev: &[u8; 32], seq: i64, time: UnixMillis, fields: [Option<&str>; 5]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(prev);
    let mut length = Decimal::default();
    let mut field = |text: Option<&str>| match text {
        Some(text) => {
            let len = i64::try_from(text.len()).expect("a text shorter than 2^63 bytes");
            context.update(length.of(len).as_bytes());
            context.update(b":");
            context.update(text.as_bytes());
        }
        None => context.update(b"-"),
    };
    let (mut seq_text, mut time_text) = (Decimal::default(), Decimal::default());
    field(Some(seq_text.of(seq)));
    field(Some(time_text.of(time.as_millis())));
    for text in fields {
        field(text);
    }
    let mut hash = [0; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// A buffer that writes a number in decimal without allocating.
#[derive(Default)]
struct Decimal([u8; 20]);

impl Decimal {
    fn of(&mut self, n: i64) -> &str {
        let mut at = self.0.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            self.0[at] = b'0' + u8::try_from(rest % 10).expect("a digit");
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            at -= 1;
            self.0[at] = b'-';
        }
        std::str::from_utf8(&self.0[at..]).expect("ASCII digits")
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// Rows per INSERT statement: 8 parameters each stays far below both databases' limits.
const ROWS_PER_STATEMENT: usize = 256;

const COLUMNS: &str = "seq, time, action, principal, ring, kid, detail, hash";

fn from_row(row: &AnyRow) -> Result<StoredAuditRecord, sqlx::Error> {
    Ok(StoredAuditRecord {
        seq: row.try_get("seq")?,
        time: row.try_get("time")?,
        action: row.try_get("action")?,
        principal: row.try_get("principal")?,
        ring: row.try_get("ring")?,
        kid: row.try_get("kid")?,
        detail: row.try_get("detail")?,
        hash: row.try_get("hash")?,
    })
}

/// A record about to be inserted: its columns, borrowed from it where they can be.
struct NewRow<'a> {
    seq: i64,
    record: &'a AuditRecord,
    hash: String,
}

/// A chain head: the newest record's `seq` and hash.
type Head = (i64, [u8; 32]);

/// What an append left: the chain's new head, and whether the append found another writer's
/// records after the head its store knew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Appended {
    head: Head,
    contended: bool,
}

/// What a store's last committed append left.
#[derive(Clone, Default)]
pub(super) struct HeadHint(Arc<Mutex<Option<Appended>>>);

impl HeadHint {
    fn last(&self) -> Option<Appended> {
        *self.0.lock().expect("head hint poisoned")
    }

    /// Called when an append found the head moved by another writer: the store's next append
    /// takes the lock first.
    fn met_another_writer(&self) {
        if let Some(known) = self.0.lock().expect("head hint poisoned").as_mut() {
            known.contended = true;
        }
    }

    /// Called once an append has committed; an older head than the one known (two appends of
    /// this store finishing out of order) is ignored.
    pub(super) fn committed(&self, appended: Appended) {
        let mut known = self.0.lock().expect("head hint poisoned");
        if known.is_none_or(|k| k.head.0 < appended.head.0) {
            *known = Some(appended);
        }
    }
}

/// `records` chained after `prev`, the first taking `seq` `first`; and the new head's hash.
fn chained(records: &[AuditRecord], first: i64, mut prev: [u8; 32]) -> (Vec<NewRow<'_>>, [u8; 32]) {
    let mut rows = Vec::with_capacity(records.len());
    for (seq, record) in (first..).zip(records) {
        prev = chain_hash(
            &prev,
            seq,
            record.time,
            [
                Some(record.event().action().as_str()),
                Some(&record.principal),
                record.ring.as_ref().map(RingName::as_str),
                record.kid.as_ref().map(Kid::as_str),
                Some(record.detail()),
            ],
        );
        rows.push(NewRow {
            seq,
            record,
            hash: hex_encode(&prev),
        });
    }
    (rows, prev)
}

/// Appends `records` to the chain inside the caller's transaction, [`ROWS_PER_STATEMENT`] at a
/// time, each chunk in one statement ([`append_at`]). The first goes on the head the store's last
/// append left, unless that append met another writer; when it does not go there (or was not
/// tried), the append takes the head's lock and reads it, and the first chunk goes there. Once
/// the first chunk has moved the head, the transaction holds its lock: the others follow it.
/// Returns what the append leaves, for the caller to give [`HeadHint::committed`] once the
/// transaction has committed.
pub(super) async fn insert_many(
    conn: &mut AnyConnection,
    hint: &HeadHint,
    records: &[AuditRecord],
) -> Result<Option<Appended>, StoreError> {
    let mut chunks = records.chunks(ROWS_PER_STATEMENT);
    let Some(first) = chunks.next() else {
        return Ok(None);
    };
    let known = hint.last();
    let at_hint = match known {
        Some(Appended {
            head,
            contended: false,
        }) => append_at(conn, head, first, false)
            .await?
            .map(|moved| (head, moved)),
        _ => None,
    };
    let (start, mut head) = if let Some(both) = at_hint {
        both
    } else {
        let found = lock_head(conn).await?;
        let moved = append_at(conn, found, first, false).await?;
        (found, moved.ok_or_else(moved_under_its_lock)?)
    };
    for chunk in chunks {
        head = append_at(conn, head, chunk, false)
            .await?
            .ok_or_else(moved_under_its_lock)?;
    }
    claim_raw_jtis(conn, records).await?;
    list_revocations(conn, start.0 + 1, records).await?;
    spend_refresh_tokens(conn, records).await?;
    Ok(Some(Appended {
        head,
        contended: known.is_some_and(|k| k.head != start),
    }))
}

/// Takes the chain head's lock until the transaction ends (an UPDATE that changes nothing:
/// SQLite has no `SELECT .. FOR UPDATE`) and reads it.
async fn lock_head(conn: &mut AnyConnection) -> Result<Head, StoreError> {
    let row = sqlx::query("UPDATE audit_chain SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let (seq, hash): (i64, String) = (row.try_get("seq")?, row.try_get("hash")?);
    let hash = hex_decode(&hash)
        .ok_or_else(|| StoreError::Other("the audit chain head holds a malformed hash".into()))?;
    Ok((seq, hash))
}

fn moved_under_its_lock() -> StoreError {
    StoreError::Other("the audit chain head moved under its lock".into())
}

/// Appends `(p, p, ...), (p, p, ...)`: `rows` tuples of `columns` parameters, numbered on from
/// `numbered_after` (`$5, $6, ...`), or anonymous (`?`) when `None`.
fn push_rows(sql: &mut String, rows: usize, columns: usize, numbered_after: Option<usize>) {
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for k in 1..=columns {
            if k > 1 {
                sql.push_str(", ");
            }
            match numbered_after {
                Some(after) => {
                    let _ = write!(sql, "${}", after + columns * i + k);
                }
                None => sql.push('?'),
            }
        }
        sql.push(')');
    }
}

/// Binds a row's 8 columns, in [`COLUMNS`] order.
fn bind_row<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    row: &'q NewRow<'q>,
) -> Query<'q, Any, AnyArguments<'q>> {
    let record = row.record;
    query
        .bind(row.seq)
        .bind(record.time)
        .bind(record.event().action().as_str())
        .bind(record.principal.as_str())
        .bind(record.ring.as_ref().map(RingName::as_str))
        .bind(record.kid.as_ref().map(Kid::as_str))
        .bind(record.detail())
        .bind(row.hash.as_str())
}

/// Chains `records` (at most [`ROWS_PER_STATEMENT`]) onto `at` and appends them in one round
/// trip: the head moves if it is still at `at`, and only then are the rows inserted and the
/// signing keys' `last_token_exp` raised. Returns the new head if it moved; when it did not,
/// nothing changed. A key that has left the signing states (retired, revoked) refuses the batch
/// (`Changed`): no token is returned that its JWKS may no longer hold.
/// Postgres does it in one statement (data-modifying CTEs) that changes nothing unless every
/// key of the batch still signs, so that it is whole even as a transaction of its own
/// ([`append_alone`]): it locks the head, then the keys (the order every transaction that
/// appends takes them in: a change of state locks the head as it begins, and the writer's
/// batch begins with its append), reading each as committed once locked. SQLite, which has no such statements, does it in one
/// call of several statements under its one write lock: the head moves only if every key of
/// the batch still signs, and each statement after that runs only if the head holds this
/// batch's last hash (not its `seq`: another writer may have appended as many records
/// meanwhile). `alone`, the call is its own transaction there too (`BEGIN IMMEDIATE` ..
/// `COMMIT`); otherwise it runs inside the caller's. Only a byte-identical batch from another
/// writer, at the same place in the chain, would leave that hash too: then the INSERT collides
/// with its `seq`s, and the batch is refused whole (`Conflict`) rather than taken twice.
async fn append_at(
    conn: &mut AnyConnection,
    at: Head,
    records: &[AuditRecord],
    alone: bool,
) -> Result<Option<Head>, StoreError> {
    let (seq, hash) = at;
    let (rows, head) = chained(records, seq + 1, hash);
    let lifetimes = key_lifetimes(records);
    let count = i64::try_from(rows.len()).expect("a batch fits in i64");
    let keys = i64::try_from(lifetimes.len()).expect("a batch fits in i64");
    let (prev_hash, head_hash) = (hex_encode(&hash), hex_encode(&head));
    let moved = if conn.backend_name() == "PostgreSQL" {
        // $1-$4: the head after and before; $5: how many keys signed; then (exp, kid) pairs
        // (one that matches no key when there are none: VALUES cannot be empty), then the rows.
        let mut sql = String::from(
            "WITH head AS (SELECT 1 FROM audit_chain WHERE id = 1 AND seq = $3 AND hash = $4 \
             FOR UPDATE), \
             lifetimes (exp, kid) AS (VALUES ",
        );
        push_rows(&mut sql, lifetimes.len().max(1), 2, Some(5));
        let _ = write!(
            sql,
            "), signing AS (SELECT keys.kid FROM keys JOIN lifetimes l ON keys.kid = l.kid \
             WHERE keys.state IN ('active', 'retiring') AND EXISTS (SELECT 1 FROM head) \
             FOR UPDATE OF keys), \
             usable AS (SELECT count(*) = $5 AS all_sign FROM signing), \
             moved AS (UPDATE audit_chain SET seq = $1, hash = $2 WHERE id = 1 \
             AND EXISTS (SELECT 1 FROM head) AND (SELECT all_sign FROM usable) RETURNING 1), \
             appended AS (INSERT INTO audit_log ({COLUMNS}) SELECT * FROM (VALUES "
        );
        push_rows(
            &mut sql,
            rows.len(),
            8,
            Some(5 + 2 * lifetimes.len().max(1)),
        );
        sql.push_str(
            ") AS v WHERE EXISTS (SELECT 1 FROM moved)), \
             extended AS (UPDATE keys SET last_token_exp = \
             GREATEST(COALESCE(keys.last_token_exp, 0), l.exp) FROM lifetimes l \
             WHERE keys.kid = l.kid AND EXISTS (SELECT 1 FROM moved)) \
             SELECT EXISTS (SELECT 1 FROM head) AS at_head, \
             (SELECT all_sign FROM usable) AS all_sign",
        );
        let mut query = sqlx::query(&sql)
            .bind(seq + count)
            .bind(head_hash.as_str())
            .bind(seq)
            .bind(prev_hash.as_str())
            .bind(keys);
        for (kid, exp) in &lifetimes {
            query = query.bind(*exp).bind(*kid);
        }
        if lifetimes.is_empty() {
            query = query.bind(0_i64).bind("");
        }
        for row in &rows {
            query = bind_row(query, row);
        }
        let row = query.fetch_one(&mut *conn).await?;
        let (at_head, all_sign): (bool, bool) = (row.try_get("at_head")?, row.try_get("all_sign")?);
        if at_head && !all_sign {
            return Err(key_left_signing());
        }
        at_head
    } else {
        // The head moves only if every key of the batch still signs; the other statements run
        // only if the head holds this batch's last hash, that is if the first one moved it there.
        let mut sql = String::from(if alone { "BEGIN IMMEDIATE; " } else { "" });
        sql.push_str(
            "UPDATE audit_chain SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ? \
             AND (SELECT count(*) FROM keys WHERE state IN ('active', 'retiring') AND kid IN (",
        );
        for i in 0..lifetimes.len() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push_str(")) = ? RETURNING 1; INSERT INTO audit_log (");
        sql.push_str(COLUMNS);
        sql.push_str(") SELECT * FROM (VALUES ");
        push_rows(&mut sql, rows.len(), 8, None);
        sql.push_str(") WHERE (SELECT hash FROM audit_chain WHERE id = 1) = ?;");
        for _ in 0..lifetimes.len() {
            sql.push_str(
                " UPDATE keys SET last_token_exp = max(ifnull(last_token_exp, 0), ?) \
                 WHERE kid = ? AND (SELECT hash FROM audit_chain WHERE id = 1) = ?;",
            );
        }
        if alone {
            sql.push_str(" COMMIT;");
        }
        let mut query = sqlx::query(&sql)
            .bind(seq + count)
            .bind(head_hash.as_str())
            .bind(seq)
            .bind(prev_hash.as_str());
        for kid in lifetimes.keys() {
            query = query.bind(*kid);
        }
        query = query.bind(keys);
        for row in &rows {
            query = bind_row(query, row);
        }
        query = query.bind(head_hash.as_str());
        for (kid, exp) in &lifetimes {
            query = query.bind(*exp).bind(*kid).bind(head_hash.as_str());
        }
        // Whether the head moved, from its UPDATE's RETURNING (not from the rows each statement
        // changed: `BEGIN` and `COMMIT` count the previous statement's changes again).
        let moved = !query.fetch_all(&mut *conn).await?.is_empty();
        if !moved {
            // Nothing changed: the head had moved, or (if it had not) a key left signing.
            let row = sqlx::query("SELECT seq, hash FROM audit_chain WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?;
            let (now_seq, now_hash): (i64, String) = (row.try_get("seq")?, row.try_get("hash")?);
            if now_seq == seq && now_hash == prev_hash {
                return Err(key_left_signing());
            }
        }
        moved
    };
    Ok(moved.then_some((seq + count, head)))
}

fn key_left_signing() -> StoreError {
    StoreError::Changed("a key of the batch no longer signs".into())
}

/// Appends `records` in one call that is its own transaction ([`append_at`] is whole), when
/// that is safe and can be done: for a batch of plain signatures (they change nothing but the
/// chain and their keys' lifetimes) that fits one statement, on the head the store's last
/// append left, unless that append met another writer. One round trip where `BEGIN`, the
/// append and `COMMIT` take three. Returns whether the records are committed; when not, nothing
/// changed (the head had moved: the store's next append takes the lock first). After an error,
/// a SQLite connection may still be inside the transaction: the caller drops it.
pub(super) async fn append_alone(
    conn: &mut AnyConnection,
    hint: &HeadHint,
    records: &[AuditRecord],
) -> Result<bool, StoreError> {
    let Some(Appended {
        head,
        contended: false,
    }) = hint.last()
    else {
        return Ok(false);
    };
    if records.is_empty()
        || records.len() > ROWS_PER_STATEMENT
        || !records
            .iter()
            .all(|r| matches!(r.event(), AuditEvent::Sign(_)))
    {
        return Ok(false);
    }
    let Some(moved) = append_at(conn, head, records, true).await? else {
        hint.met_another_writer();
        return Ok(false);
    };
    hint.committed(Appended {
        head: moved,
        contended: false,
    });
    Ok(true)
}

/// A refresh token's exchange record spends it: its family is made (or its `expires` raised),
/// then the token is claimed in `refresh_uses`. A family revoked already, or a token spent
/// already, refuses the record (`Conflict`), and with it that exchange. A reuse record revokes
/// its family.
async fn spend_refresh_tokens(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    for record in records {
        let Some(ring) = &record.ring else { continue };
        match record.event() {
            AuditEvent::RefreshTokenUsed {
                family,
                jti,
                sub,
                expires,
            } => {
                let revoked: Option<i64> = sqlx::query(
                    "INSERT INTO refresh_families (ring, family, sub, expires) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (ring, family) DO UPDATE SET expires = CASE \
                     WHEN refresh_families.expires < excluded.expires THEN excluded.expires \
                     ELSE refresh_families.expires END RETURNING revoked_at",
                )
                .bind(ring.as_str())
                .bind(family)
                .bind(sub)
                .bind(*expires)
                .fetch_one(&mut *conn)
                .await?
                .try_get("revoked_at")?;
                if revoked.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "refresh token family {family} is revoked"
                    )));
                }
                sqlx::query(
                    "INSERT INTO refresh_uses (ring, jti, family, expires) VALUES ($1, $2, $3, $4)",
                )
                .bind(ring.as_str())
                .bind(jti)
                .bind(family)
                .bind(*expires)
                .execute(&mut *conn)
                .await?;
            }
            AuditEvent::RefreshTokenReused { family, .. } => {
                sqlx::query(
                    "UPDATE refresh_families SET revoked_at = $1 \
                     WHERE ring = $2 AND family = $3 AND revoked_at IS NULL",
                )
                .bind(record.time.as_millis())
                .bind(ring.as_str())
                .bind(family)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A token revocation's record lists it in `revoked_tokens` under the record's own `seq`. On
/// Postgres the commit also notifies [`REVOCATIONS_CHANNEL`], so that every replica listening
/// reads it at once.
async fn list_revocations(
    conn: &mut AnyConnection,
    first: i64,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    let mut listed = false;
    for (seq, record) in (first..).zip(records) {
        let (
            Some(ring),
            AuditEvent::TokenRevoked {
                jti,
                sub,
                issued_before,
                expires,
            },
        ) = (&record.ring, record.event())
        else {
            continue;
        };
        sqlx::query(
            "INSERT INTO revoked_tokens (seq, ring, jti, sub, issued_before, expires) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(ring.as_str())
        .bind(jti.as_deref())
        .bind(sub.as_deref())
        .bind(*issued_before)
        .bind(*expires)
        .execute(&mut *conn)
        .await?;
        listed = true;
    }
    if listed && conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(REVOCATIONS_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The latest `exp` the signatures in `records` carry, by the kid of the key that made them
/// (milliseconds).
fn key_lifetimes(records: &[AuditRecord]) -> BTreeMap<&str, i64> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for record in records {
        let (Some(kid), AuditEvent::Sign(facts) | AuditEvent::SignRaw(facts)) =
            (&record.kid, record.event())
        else {
            continue;
        };
        if let Some(exp) = facts.exp.as_ref().and_then(Value::as_i64) {
            let exp = UnixMillis::from_secs(exp).as_millis();
            let entry = latest.entry(kid.as_str()).or_insert(exp);
            *entry = (*entry).max(exp);
        }
    }
    latest
}

/// A raw signature's record claims its `jti` in its ring until the token expires: a second
/// record claiming it is refused (`Conflict`), and with it that signature.
async fn claim_raw_jtis(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    for record in records {
        let (Some(ring), AuditEvent::SignRaw(facts)) = (&record.ring, record.event()) else {
            continue;
        };
        if let (Some(Value::String(jti)), Some(exp)) =
            (&facts.jti, facts.exp.as_ref().and_then(Value::as_i64))
        {
            sqlx::query("INSERT INTO raw_jtis (ring, jti, exp) VALUES ($1, $2, $3)")
                .bind(ring.as_str())
                .bind(jti.as_str())
                .bind(exp)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// The audit writer's connection: one, held from batch to batch, so that a batch costs its own
/// statements and no more (a pooled connection is pinged when taken and again when given back,
/// two round trips per batch). It is opened when first needed and again after a batch finds it
/// broken, and belongs to the runtime of the task that opened it.
pub struct AuditConnection {
    /// The store whose database this connects to; the chain head hint is this writer's own.
    store: Store,
    conn: Option<AnyConnection>,
    closed: bool,
}

impl AuditConnection {
    /// Commits all `records` in one transaction: all are durable when this returns `Ok`.
    /// `in_use` says the connection has not sat idle since the last append (the records queued
    /// while it committed): only then may a batch go as one statement ([`append_alone`]). A
    /// connection that sat idle may have been closed by the database meanwhile, and a statement
    /// that fails could have run or not; so after idling a batch starts with `BEGIN`, which fails
    /// before anything of the batch ran, and the batch then goes on a new connection.
    pub async fn append(
        &mut self,
        records: &[AuditRecord],
        in_use: bool,
    ) -> Result<(), StoreError> {
        if self.closed {
            return Err(StoreError::Unavailable("the audit store is closed".into()));
        }
        let appended = self.append_on_some_connection(records, in_use).await;
        if let Err(StoreError::Unavailable(_)) = appended {
            // Broken, or in an unknown state: the next batch opens another.
            self.conn = None;
        }
        appended
    }

    async fn append_on_some_connection(
        &mut self,
        records: &[AuditRecord],
        in_use: bool,
    ) -> Result<(), StoreError> {
        if let Some(conn) = self.conn.as_mut() {
            if in_use {
                match append_alone(conn, &self.store.head, records).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    // On SQLite it may have failed inside its transaction: dropping the
                    // connection rolls that back, and the next batch opens another.
                    Err(e) => {
                        self.conn = None;
                        return Err(e);
                    }
                }
            }
            match Change::begin_append_on(&self.store, conn).await {
                Ok(change) => return change.commit(records).await,
                // The database may have closed it while it sat idle (a restart, a failover):
                // nothing of the batch ran, so it goes on a new connection.
                Err(StoreError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let options = self.store.pool.connect_options();
        let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
            .await
            .map_err(|_| StoreError::Unavailable("connecting timed out".into()))??;
        let conn = self.conn.insert(conn);
        Change::begin_append_on(&self.store, conn)
            .await?
            .commit(records)
            .await
    }

    /// Closes the connection: every append after this fails as `Unavailable`.
    pub async fn close(&mut self) {
        self.closed = true;
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// The Postgres channel notified when a revocation commits.
pub const REVOCATIONS_CHANNEL: &str = "signet_revocations";

/// A row of `revoked_tokens`.
pub struct RevokedRow {
    pub seq: i64,
    pub ring: String,
    pub jti: Option<String>,
    pub sub: Option<String>,
    pub issued_before: Option<i64>,
    pub expires: i64,
}

impl Store {
    /// The revocations listed after `seq` that still cover a token at `now` (seconds), oldest
    /// first.
    pub(crate) async fn revocations_after(
        &self,
        seq: i64,
        now: i64,
    ) -> Result<Vec<RevokedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, ring, jti, sub, issued_before, expires FROM revoked_tokens \
             WHERE seq > $1 AND expires >= $2 ORDER BY seq",
        )
        .bind(seq)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevokedRow {
                    seq: row.try_get("seq")?,
                    ring: row.try_get("ring")?,
                    jti: row.try_get("jti")?,
                    sub: row.try_get("sub")?,
                    issued_before: row.try_get("issued_before")?,
                    expires: row.try_get("expires")?,
                })
            })
            .collect()
    }

    /// On Postgres, a listener on [`REVOCATIONS_CHANNEL`], on a connection of its own; `None`
    /// on SQLite, where the lifecycle tick alone reads new revocations.
    pub(crate) async fn revocation_notices(
        &self,
    ) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let url = self.pool.connect_options().database_url.clone();
        let mut listener = sqlx::postgres::PgListener::connect(url.as_str()).await?;
        listener.listen(REVOCATIONS_CHANNEL).await?;
        Ok(Some(listener))
    }

    /// Forgets the revocations that cover no token after `before` (seconds).
    pub(crate) async fn purge_revocations(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM revoked_tokens WHERE expires < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Whether the refresh token `jti` of `family` in `ring` is spent, and whether its family
    /// is revoked.
    pub async fn refresh_token_state(
        &self,
        ring: &RingName,
        family: &str,
        jti: &str,
    ) -> Result<(bool, bool), StoreError> {
        let spent = sqlx::query("SELECT 1 AS one FROM refresh_uses WHERE ring = $1 AND jti = $2")
            .bind(ring.as_str())
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let revoked = sqlx::query(
            "SELECT 1 AS one FROM refresh_families \
             WHERE ring = $1 AND family = $2 AND revoked_at IS NOT NULL",
        )
        .bind(ring.as_str())
        .bind(family)
        .fetch_optional(&self.pool)
        .await?
        .is_some();
        Ok((spent, revoked))
    }

    /// Forgets the spent refresh tokens and the families that no token can verify after
    /// `before` (seconds).
    pub async fn purge_refresh_families(&self, before: i64) -> Result<u64, StoreError> {
        let uses = sqlx::query("DELETE FROM refresh_uses WHERE expires < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let families = sqlx::query("DELETE FROM refresh_families WHERE expires < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(uses + families)
    }

    /// Forgets the claimed `jti`s of raw tokens that expired before `before` (seconds).
    pub(crate) async fn purge_raw_jtis(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM raw_jtis WHERE exp < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Commits all `records` in one transaction: all are durable when this returns `Ok`.
    pub async fn append_audit_batch(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        Change::begin(self).await?.commit(records).await
    }

    /// A connection of its own for the audit writer, opened when first used.
    pub fn audit_connection(&self) -> AuditConnection {
        AuditConnection {
            store: Store {
                pool: self.pool.clone(),
                dialect: self.dialect,
                head: HeadHint::default(),
            },
            conn: None,
            closed: false,
        }
    }

    /// One page of records matching `query`.
    pub(crate) async fn audit_records(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut texts = Vec::new();
        let mut numbers = Vec::new();
        for (column, value) in [
            ("ring", &query.ring),
            ("kid", &query.kid),
            ("principal", &query.principal),
            ("action", &query.action),
        ] {
            if let Some(value) = value {
                texts.push(value.as_str());
                conditions.push(format!("{column} = ${}", texts.len()));
            }
        }
        for (condition, value) in [
            ("time >=", query.from.map(UnixMillis::as_millis)),
            ("time <", query.to.map(UnixMillis::as_millis)),
            (
                if query.oldest_first { "seq >" } else { "seq <" },
                query.cursor,
            ),
        ] {
            if let Some(value) = value {
                numbers.push(value);
                conditions.push(format!("{condition} ${}", texts.len() + numbers.len()));
            }
        }
        if query.events_only {
            conditions.push(format!(
                "action NOT IN ('{}', '{}', '{}', '{}')",
                Action::Sign.as_str(),
                Action::SignRaw.as_str(),
                Action::RequestDenied.as_str(),
                Action::RequestsDenied.as_str()
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let order = if query.oldest_first { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log {filter} ORDER BY seq {order} LIMIT {}",
            query.limit
        );
        let mut statement = sqlx::query(&sql);
        for text in texts {
            statement = statement.bind(text);
        }
        for number in numbers {
            statement = statement.bind(number);
        }
        let rows = statement.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Up to `limit` records from `first` to `last`, oldest first (for walking the chain).
    pub(crate) async fn audit_records_between(
        &self,
        first: i64,
        last: i64,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT {limit}"
        ))
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn audit_record(&self, seq: i64) -> Result<Option<StoredAuditRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq = $1"))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash, start_seq FROM audit_chain WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(ChainHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
            start_seq: row.try_get("start_seq")?,
        })
    }

    /// The newest record of `action`, if any.
    pub(crate) async fn latest_audit_record(
        &self,
        action: Action,
    ) -> Result<Option<StoredAuditRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(action.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every record's action, principal and kid, oldest first (for tests and small tools).
    pub async fn audit_actions(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT action, principal, kid FROM audit_log ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_keeps_the_newest_append_and_whether_it_met_another_writer() {
        let hint = HeadHint::default();
        let appended = |seq, contended| Appended {
            head: (seq, [0; 32]),
            contended,
        };
        hint.committed(appended(10, true));
        // An older append of this store that commits last changes nothing.
        hint.committed(appended(4, false));
        assert_eq!(hint.last(), Some(appended(10, true)));
        hint.committed(appended(12, false));
        assert_eq!(hint.last(), Some(appended(12, false)));
    }

    fn hash(action: &str, principal: &str, ring: Option<&str>, kid: Option<&str>) -> String {
        StoredAuditRecord {
            seq: 1,
            time: UnixMillis::from_millis(2),
            action: action.into(),
            principal: principal.into(),
            ring: ring.map(Into::into),
            kid: kid.map(Into::into),
            detail: "{}".into(),
            hash: None,
        }
        .expected_hash(GENESIS_HASH)
        .unwrap()
    }

    #[test]
    fn the_canonical_form_separates_fields_and_nulls() {
        // Moving text between fields, or a NULL for an empty string, changes the hash.
        assert_ne!(
            hash("a", "p", Some("r"), None),
            hash("a", "p", None, Some("r"))
        );
        assert_ne!(hash("a", "p", Some(""), None), hash("a", "p", None, None));
        assert_ne!(hash("ab", "c", None, None), hash("a", "bc", None, None));
        assert_eq!(hash("a", "p", None, None).len(), 64);
    }

    /// The canonical form, spelled out byte by byte: the writer and the verifier both hash it.
    #[test]
    fn the_hash_is_sha256_of_the_previous_hash_and_the_length_prefixed_fields() {
        let mut canonical = vec![0u8; 32];
        canonical.extend_from_slice(b"2:121:21:a1:p-1:k2:{}");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical);
        let record = StoredAuditRecord {
            seq: 12,
            time: UnixMillis::from_millis(2),
            action: "a".into(),
            principal: "p".into(),
            ring: None,
            kid: Some("k".into()),
            detail: "{}".into(),
            hash: None,
        };
        assert_eq!(
            record.expected_hash(GENESIS_HASH),
            Some(hex_encode(digest.as_ref()))
        );
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 1_700_000_000_000, -12, i64::MAX, i64::MIN] {
            assert_eq!(Decimal::default().of(n), n.to_string());
        }
    }
}
