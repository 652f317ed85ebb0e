//! The SQLite and Postgres migration sets define the same schema: the same tables, the same
//! columns in each, the same primary keys and indexes, and the same views but for the auditor
//! views Postgres has by design. Every statement in `src/store` is written once for both
//! databases, so a column or index added on one side only is a bug this test catches before a
//! query fails on the other. Column types are not compared (the dialects name them differently),
//! nor column order (every statement names its columns); triggers, functions and roles are not
//! compared either.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

use crate::helpers::{Db, TestDb, AUDITOR_VIEWS};

/// sqlx's own bookkeeping, not the application's schema (its column types differ by dialect).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Table,
    View,
}

/// What an index covers, whatever its name: index names differ where the database makes them
/// (`sqlite_autoindex_keys_2` and `keys_kid_key` for the same UNIQUE column). A partial index's
/// predicate is not compared (each dialect prints it its own way), only that it has one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Relation {
    kind: Kind,
    columns: BTreeSet<String>,
    /// The primary key's columns in key order. Compared on its own, not as an index: SQLite has
    /// no index for an `INTEGER PRIMARY KEY` (the rowid) and names the others
    /// `sqlite_autoindex_*`, while Postgres has a `*_pkey` index for each, so primary-key indexes
    /// are left out of `indexes` on both sides and the key itself compared here.
    primary_key: Vec<String>,
    /// Every other index, sorted (two partial unique indexes on `keys (ring)` count twice).
    indexes: Vec<Index>,
}

impl Relation {
    fn new(kind: Kind) -> Relation {
        Relation {
            kind,
            columns: BTreeSet::new(),
            primary_key: Vec::new(),
            indexes: Vec::new(),
        }
    }
}

type Schema = BTreeMap<String, Relation>;

/// Applies the migrations the way the server does at start (`Store::connect`).
async fn migrate(db: &TestDb) {
    let store = signet::store::Store::connect(&SecretString::from(db.url.clone()))
        .await
        .unwrap_or_else(|e| panic!("migrating {}: {e}", db.url.split(':').next().unwrap()));
    store.close().await;
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = SqliteConnection::connect(url).await.unwrap();
    let objects = sqlx::query(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> $1 ORDER BY name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for object in objects {
        let name: String = object.get("name");
        let kind = match object.get::<String, _>("type").as_str() {
            "table" => Kind::Table,
            _ => Kind::View,
        };
        let mut relation = Relation::new(kind);
        let mut primary_key = Vec::new();
        for column in sqlx::query("SELECT name, pk FROM pragma_table_info($1)")
            .bind(&name)
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            let column_name: String = column.get("name");
            let pk: i64 = column.get("pk");
            if pk > 0 {
                primary_key.push((pk, column_name.clone()));
            }
            relation.columns.insert(column_name);
        }
        primary_key.sort();
        relation.primary_key = primary_key.into_iter().map(|(_, c)| c).collect();
        for index in sqlx::query(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list($1) WHERE origin <> 'pk'",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        {
            let index_name: String = index.get("name");
            let columns = sqlx::query(
                "SELECT COALESCE(name, '<expression>') AS name FROM pragma_index_info($1) ORDER BY seqno",
            )
            .bind(&index_name)
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|c| c.get::<String, _>("name"))
            .collect();
            relation.indexes.push(Index {
                columns,
                unique: index.get::<i64, _>("unique") != 0,
                partial: index.get::<i64, _>("partial") != 0,
            });
        }
        relation.indexes.sort();
        schema.insert(name, relation);
    }
    conn.close().await.unwrap();
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let mut schema = Schema::new();
    for object in sqlx::query(
        "SELECT table_name::text AS name, table_type::text AS kind FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name <> $1 ORDER BY table_name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .unwrap()
    {
        let name: String = object.get("name");
        let kind = match object.get::<String, _>("kind").as_str() {
            "BASE TABLE" => Kind::Table,
            "VIEW" => Kind::View,
            other => panic!("postgres: {name} is a {other}, which this test does not know"),
        };
        schema.insert(name, Relation::new(kind));
    }
    for column in sqlx::query(
        "SELECT table_name::text AS relation, column_name::text AS name \
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    {
        let relation: String = column.get("relation");
        if let Some(relation) = schema.get_mut(&relation) {
            relation.columns.insert(column.get("name"));
        }
    }
    // Each index's key columns in order (an expression, which has no column, by its text).
    for index in sqlx::query(
        "SELECT t.relname::text AS relation, ix.indisprimary AS is_primary, \
                ix.indisunique AS is_unique, ix.indpred IS NOT NULL AS is_partial, \
                ARRAY(SELECT COALESCE(a.attname::text, pg_get_indexdef(ix.indexrelid, k.ord::int, true)) \
                      FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                      LEFT JOIN pg_attribute a \
                             ON a.attrelid = ix.indrelid AND a.attnum = k.attnum AND k.attnum > 0 \
                      WHERE k.ord <= ix.indnkeyatts ORDER BY k.ord) AS columns \
         FROM pg_index ix \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    {
        let relation: String = index.get("relation");
        let Some(relation) = schema.get_mut(&relation) else {
            continue; // _sqlx_migrations
        };
        let columns: Vec<String> = index.get("columns");
        if index.get::<bool, _>("is_primary") {
            relation.primary_key = columns;
        } else {
            relation.indexes.push(Index {
                columns,
                unique: index.get("is_unique"),
                partial: index.get("is_partial"),
            });
        }
    }
    for relation in schema.values_mut() {
        relation.indexes.sort();
    }
    conn.close().await.unwrap();
    schema
}

/// Every difference between the two schemas, as sentences, once the allowed Postgres-only
/// objects are set aside.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut found = Vec::new();
    for view in AUDITOR_VIEWS {
        match postgres.get(view) {
            Some(r) if r.kind == Kind::View => {}
            _ => found.push(format!(
                "{view} is allowed as a Postgres-only view, but Postgres has no such view: \
                 update AUDITOR_VIEWS"
            )),
        }
        if sqlite.contains_key(view) {
            found.push(format!(
                "{view} is allowed as a Postgres-only view, but SQLite has it too: update \
                 AUDITOR_VIEWS"
            ));
        }
    }
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        let (s, p) = match (sqlite.get(name), postgres.get(name)) {
            (Some(s), Some(p)) => (s, p),
            (Some(s), None) => {
                found.push(format!("{:?} {name} is only in SQLite", s.kind));
                continue;
            }
            (None, Some(_)) if AUDITOR_VIEWS.contains(&name.as_str()) => continue,
            (None, Some(p)) => {
                found.push(format!("{:?} {name} is only in Postgres", p.kind));
                continue;
            }
            (None, None) => unreachable!(),
        };
        if s.kind != p.kind {
            found.push(format!(
                "{name} is a {:?} in SQLite and a {:?} in Postgres",
                s.kind, p.kind
            ));
        }
        for column in s.columns.difference(&p.columns) {
            found.push(format!("column {name}.{column} is only in SQLite"));
        }
        for column in p.columns.difference(&s.columns) {
            found.push(format!("column {name}.{column} is only in Postgres"));
        }
        if s.primary_key != p.primary_key {
            found.push(format!(
                "{name}: primary key {:?} in SQLite, {:?} in Postgres",
                s.primary_key, p.primary_key
            ));
        }
        if s.indexes != p.indexes {
            found.push(format!(
                "{name}: indexes (primary key aside)\n    SQLite:   {:?}\n    Postgres: {:?}",
                s.indexes, p.indexes
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_define_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = TestDb::new(Db::Sqlite, dir.path()).await;
    let postgres = TestDb::new(Db::Postgres, dir.path()).await;
    migrate(&sqlite).await;
    migrate(&postgres).await;
    let sqlite_schema = sqlite_schema(&sqlite.url).await;
    let postgres_schema = postgres_schema(&postgres.url).await;

    // The comparison must have something to compare: the tables the store uses are there.
    for table in [
        "rings",
        "keys",
        "clients",
        "audit_log",
        "audit_chain",
        "schedules",
    ] {
        assert!(
            sqlite_schema.contains_key(table) && postgres_schema.contains_key(table),
            "table {table} is missing: SQLite has {:?}, Postgres {:?}",
            sqlite_schema.keys(),
            postgres_schema.keys()
        );
    }
    assert!(!sqlite_schema["keys"].indexes.is_empty());

    let found = differences(&sqlite_schema, &postgres_schema);
    assert!(
        found.is_empty(),
        "migrations/sqlite and migrations/postgres define different schemas:\n  {}",
        found.join("\n  ")
    );
}
