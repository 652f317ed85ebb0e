//! What the benchmarks share.

pub mod load;
pub mod server;

/// A fresh database on the Postgres server at `admin`, so that builds with different schemas
/// never meet; returns its URL and name.
pub async fn fresh_database(admin: &str, label: &str) -> (String, String) {
    let name = format!("signet_bench_{}_{label}", std::process::id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .expect("SIGNET_BENCH_DATABASE_URL reachable");
    // One statement each: DROP and CREATE DATABASE refuse to run inside a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut conn).await.unwrap();
    }
    let (base, _) = admin.rsplit_once('/').expect("a database URL with a path");
    (format!("{base}/{name}"), name)
}

/// Drops the database `name` made by [`fresh_database`].
pub async fn drop_database(admin: &str, name: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}
