//! `signet serve` refusing to start: the message names the path, what signet tried and why, and
//! the start leaves nothing behind. And what the first start creates: the audit ring's key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use reqwest::StatusCode;

use crate::helpers::{signet_process, Db, TestApp};

/// `signet serve --data-dir DIR ARGS` (on a free port), which must refuse to start.
fn refused_serve(binary: Option<&Path>, data_dir: &Path, args: &[&str]) -> String {
    let data_dir = data_dir.to_str().unwrap();
    let mut command = signet_process(
        &[
            &["serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
            args,
        ]
        .concat(),
        &[],
    );
    if let Some(binary) = binary {
        // The same command, with another program: the copy of signet that another user runs.
        let mut other = std::process::Command::new("setpriv");
        other
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(binary)
            .args(command.get_args());
        for (name, value) in command.get_envs() {
            match value {
                Some(value) => other.env(name, value),
                None => other.env_remove(name),
            };
        }
        command = other;
    }
    let output: Output = command.output().expect("signet runs");
    assert!(!output.status.success(), "started: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_data_directory_that_is_a_file_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signet-data");
    std::fs::write(&file, "notes").unwrap();
    let stderr = refused_serve(None, &file, &[]);
    assert!(
        stderr.contains(&format!(
            "the data directory {} is not a directory",
            file.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "notes");
    assert_eq!(entries(dir.path()), vec!["signet-data"]);
}

/// A store that belongs to another user: as root, signet runs as `nobody` (a copy of the
/// binary where `nobody` may run it); as anyone else, the store is made read-only.
#[test]
fn a_store_signet_may_not_open_is_named_with_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("signet-data");
    std::fs::create_dir(&data_dir).unwrap();
    let db = data_dir.join("signet.db");
    std::fs::write(&db, "").unwrap();
    let root = rustix::process::geteuid().is_root();
    let binary = root.then(|| {
        let copy = dir.path().join("signet");
        std::fs::copy(env!("CARGO_BIN_EXE_signet"), &copy).unwrap();
        copy
    });

    // The data directory first: nobody may write to it.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let stderr = refused_serve(binary.as_deref(), &data_dir, &[]);
    let cause = if root {
        "permission denied; it belongs to root and signet runs as nobody".to_owned()
    } else {
        "permission denied; it belongs to".to_owned()
    };
    assert!(
        stderr.contains(&format!(
            "cannot open the data directory {} for writing: {cause}",
            data_dir.display()
        )),
        "{stderr}"
    );

    // Then the store in a directory anyone may write to.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        &db,
        std::fs::Permissions::from_mode(if root { 0o600 } else { 0o400 }),
    )
    .unwrap();
    let stderr = refused_serve(binary.as_deref(), &data_dir, &[]);
    assert!(
        stderr.contains(&format!(
            "cannot open the store {} for writing: {cause}",
            db.display()
        )),
        "{stderr}"
    );
    assert_eq!(entries(&data_dir), vec!["signet.db"], "nothing was created");
}

/// The store cannot be reached only after the data directory and the file backend's key were
/// created: the failed first start removes them again. In a data directory that existed, only
/// what the start added goes.
#[test]
fn a_failed_first_start_removes_what_it_created() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let unreachable = ["--database-url", "postgres://signet@127.0.0.1:1/signet"];
    let stderr = refused_serve(None, &dir.path().join("new/signet-data"), &unreachable);
    assert!(
        stderr.contains("opening the store the Postgres database signet at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes"), "mine").unwrap();
    refused_serve(None, &existing, &unreachable);
    assert_eq!(entries(&existing), vec!["notes"]);
}

/// Auditors can save the audit ring's JWKS as soon as signet has started, before any
/// checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_rings_key_exists_from_the_first_start() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let jwks = app.get("/v1/rings/_audit/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.body);
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 1);
    let checkpoints = app
        .get("/v1/audit?action=audit_checkpoint", Some(&app.admin_token))
        .await;
    assert_eq!(checkpoints.body["records"], serde_json::json!([]));
}
