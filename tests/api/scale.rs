//! Many rings on two replicas: a change to one ring reaches the other replica within one
//! refresh, and rebuilds the view of that ring alone (the others' views stay the same objects).

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use signet::rings::View;

use crate::helpers::{eventually, Db, TestApp};

const RINGS: usize = 300;

fn ring_name(i: usize) -> String {
    format!("t{i:03}")
}

/// Every ring's view in `after` is the very one of `before`, except `changed` (and the audit
/// ring, which a checkpoint may create meanwhile).
fn assert_only_rebuilt(before: &View, after: &View, changed: &str, replica: &str) {
    for (name, ring) in &before.rings {
        if &**name == changed || &**name == "_audit" {
            continue;
        }
        assert!(
            Arc::ptr_eq(ring, &after.rings[name]),
            "{replica} rebuilt the view of {name}, which did not change"
        );
    }
    assert!(
        !Arc::ptr_eq(&before.rings[changed], &after.rings[changed]),
        "{replica} did not rebuild the view of {changed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_one_of_many_rings_rebuilds_that_ring_alone_on_both_replicas() {
    let first = TestApp::spawn(Db::Postgres).await;
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    for i in 0..RINGS {
        first.create_ring(&ring_name(i), json!({})).await;
    }
    let settled = |app: &TestApp| {
        let view = app.services.rings.view();
        (0..RINGS).all(|i| {
            view.rings
                .get(ring_name(i).as_str())
                .is_some_and(|r| r.signer.is_some())
        })
    };
    eventually(120, "the second replica to hold every ring", || async {
        settled(&second)
    })
    .await;
    // A view rebuilt whole reads the rings' revisions before their keys, so it may hold a key
    // newer than its revision says; its next reload rebuilds that ring again, harmlessly. Two
    // reloads of each replica from here, and the views are at rest.
    let reloads = [
        first.services.rings.reloads(),
        second.services.rings.reloads(),
    ];
    eventually(120, "two reloads of each replica", || async {
        first.services.rings.reloads() >= reloads[0] + 2
            && second.services.rings.reloads() >= reloads[1] + 2
    })
    .await;
    let before = [first.services.rings.view(), second.services.rings.view()];

    let ring = ring_name(RINGS / 2);
    let rotated = first.rotate_immediately(&ring).await;
    assert_eq!(rotated.status, StatusCode::ACCEPTED, "{}", rotated.body);
    let kid = rotated.body["kid"].as_str().unwrap().to_owned();

    // A reload that completes after the change committed may have started before it; the one
    // after it has the change. No clock is involved: each tick reloads.
    let reloads = second.services.rings.reloads();
    eventually(120, "two reloads of the second replica", || async {
        second.services.rings.reloads() >= reloads + 2
    })
    .await;
    let after = [first.services.rings.view(), second.services.rings.view()];
    for (replica, view) in ["the first replica", "the second replica"]
        .iter()
        .zip(&after)
    {
        let signer = view.rings[ring.as_str()].signer.as_ref().unwrap();
        assert_eq!(signer.kid.as_str(), kid, "{replica} signs with the new key");
    }
    assert_only_rebuilt(&before[0], &after[0], &ring, "the first replica");
    assert_only_rebuilt(&before[1], &after[1], &ring, "the second replica");
    assert_eq!(second.jwks_kids(&ring).await[0], kid);
}

/// A ring whose first key cannot be generated is taken back: no replica keeps it, and its name
/// can be used again. (Whether a replica's view held the ring for the few milliseconds it
/// existed is up to timing; `rings::view`'s unit test covers taking a held ring out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_taken_back_leaves_every_replica() {
    let first = TestApp::spawn(Db::Postgres).await;
    let second = TestApp::start(first.data_dir.clone(), first.db.clone()).await;
    // Break the file backend both replicas share: its keys directory becomes a file.
    let keys_dir = first.data_dir.path().join("file-backend/keys");
    let aside = first.data_dir.path().join("file-backend/keys.aside");
    std::fs::rename(&keys_dir, &aside).unwrap();
    std::fs::write(&keys_dir, b"not a directory").unwrap();
    let body = json!({"name": "gone", "policy": {"issuer": "https://issuer.test"}});
    let refused = first
        .post("/v1/rings", &first.admin_token, body.clone())
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    std::fs::remove_file(&keys_dir).unwrap();
    std::fs::rename(&aside, &keys_dir).unwrap();

    for app in [&first, &second] {
        let reloads = app.services.rings.reloads();
        eventually(120, "two reloads", || async {
            app.services.rings.reloads() >= reloads + 2
        })
        .await;
        assert!(!app.services.rings.view().rings.contains_key("gone"));
        let jwks = app.get("/v1/rings/gone/jwks.json", None).await;
        assert_eq!(jwks.status, StatusCode::NOT_FOUND);
    }
    let made = first.post("/v1/rings", &first.admin_token, body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let kid = made.body["active_kid"].as_str().unwrap().to_owned();
    eventually(
        120,
        "the second replica to serve the ring made again",
        || async { second.get("/v1/rings/gone/jwks.json", None).await.status == StatusCode::OK },
    )
    .await;
    assert_eq!(second.jwks_kids("gone").await, vec![kid]);
}
