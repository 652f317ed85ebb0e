//! The README's quick start runs as written: its blocks marked `<!-- quickstart:NAME -->` run in
//! order in one bash, in an empty directory, against the `signet` binary of this build on a free
//! port; the `jose` and PyJWT snippets verify the token the first block signed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The code of the fenced block that follows `<!-- quickstart:NAME -->`.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- quickstart:{name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"))..];
    let code = &after[after.find("```sh\n").expect("a sh block after the marker") + 6..];
    code[..code.find("```").expect("the block ends")].to_owned()
}

/// An executable `name` in `dir` that runs `target` (a wrapper, not a link: a venv's Python
/// finds its packages from where it was started).
fn wrapper(dir: &Path, name: &str, target: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nexec '{target}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The full path of the program `name` on `PATH` (a wrapper must not run itself).
fn on_path(name: &str) -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/test, which installs it"))
        .display()
        .to_string()
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script: Vec<String> = ["serve", "jose", "pyjwt", "rotate"]
        .iter()
        .map(|name| block(&readme, name))
        .collect();
    let node_modules = root.join("tests/interop/node_modules");
    assert!(
        node_modules.join("jose").exists(),
        "npm jose is not installed in tests/interop: run scripts/test (or `npm ci` in tests/interop)"
    );
    let python = std::env::var("SIGNET_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SIGNET_TEST_PYTHON is not set: run scripts/test, which builds a venv with PyJWT from tests/interop/requirements.txt")
    });
    let node = std::env::var("SIGNET_TEST_NODE").unwrap_or_else(|_| on_path("node"));

    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    wrapper(&bin, "signet", env!("CARGO_BIN_EXE_signet"));
    wrapper(&bin, "node", &node);
    wrapper(&bin, "python3", &python);
    // Where `npm i jose` would have put it.
    std::os::unix::fs::symlink(&node_modules, work.path().join("node_modules")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // As pasted, plus: stop at the first failure, and never leave the server running.
    let program = format!(
        "set -eo pipefail\ntrap 'kill $SIGNET_PID 2>/dev/null; wait' EXIT\n{}",
        script.join("\n")
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(program)
        .current_dir(work.path())
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("SIGNET_ADDR", format!("http://127.0.0.1:{port}"))
        .env("SIGNET_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the quick start failed:\n{stdout}\n{stderr}"
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    for verified in [line("jose verified"), line("PyJWT verified")] {
        let claims: serde_json::Value = serde_json::from_str(
            verified
                .split_once(' ')
                .unwrap()
                .1
                .split_once(' ')
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(claims["sub"], "user-42", "{verified}");
        assert_eq!(claims["iss"], "https://auth.example.com", "{verified}");
    }
    let keys: serde_json::Value = serde_json::from_str(&line("{\"keys\":[{\"id\":")).unwrap();
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "{keys}");
    assert!(
        states.contains(&"active") && states.contains(&"published"),
        "{keys}"
    );
}
