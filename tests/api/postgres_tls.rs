//! The store over TLS: a real Postgres started with `ssl = on` and a certificate from the test's
//! own CA. `sslmode=verify-full` with that CA connects over TLS, `require` connects without
//! checking, and `verify-full` with another CA fails with a message that says so.

use crate::certs::TestCa;
use crate::helpers::refused_start;
use crate::private_postgres::PrivatePostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_connects_over_tls_and_checks_the_servers_certificate() {
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf();
    let postgres = PrivatePostgres::start_with_tls(&cert, &key);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, TestCa::new().pem()).unwrap();
    let url = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            postgres.port()
        )
    };

    for query in [
        format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
        "sslmode=require".to_owned(),
    ] {
        let store = signet::store::Store::connect(&secrecy::SecretString::from(url(&query)))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        store.close().await;
        // The session is encrypted: Postgres says so.
        let pool = sqlx::AnyPool::connect(&url(&query)).await.unwrap();
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(ssl, "{query}");
        pool.close().await;
    }

    let wrong = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other_ca_file.display()
    ));
    let refused = refused_start(&[("SIGNET_DATABASE_URL", &wrong)]);
    assert!(
        refused.contains("the database's TLS certificate is refused")
            && refused.contains("check sslrootcert"),
        "{refused}"
    );
}
