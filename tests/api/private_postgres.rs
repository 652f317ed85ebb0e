//! A Postgres cluster of a test's own (under `/usr/lib/postgresql/*/bin`, which `scripts/test`
//! installs), for tests that stop it, crash it or configure it.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A Postgres cluster of this test's own, so it can be stopped without disturbing other tests.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        PrivatePostgres::start_serving(None)
    }

    /// A cluster with `ssl = on`, presenting `cert` (PEM, leaf first) with `key` (PEM).
    pub fn start_with_tls(cert: &str, key: &str) -> PrivatePostgres {
        PrivatePostgres::start_serving(Some((cert, key)))
    }

    fn start_serving(tls: Option<(&str, &str)>) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| Some(v.ok()?.path().join("bin")))
                    .filter(|bin| bin.join("initdb").exists())
                    .max()
            })
            .expect(
                "no Postgres server under /usr/lib/postgresql/*/bin: run scripts/test, which \
                 installs it (or apt-get install postgresql)",
            );
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let as_postgres_user = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::Builder::new()
            .prefix("signet-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivatePostgres {
            dir,
            bin,
            port,
            as_postgres_user,
        };
        if as_postgres_user {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            let mut chown = Command::new("chown");
            chown.arg("postgres").arg(cluster.dir.path());
            check(chown);
        }
        let mut initdb = cluster.command(cluster.bin.join("initdb"));
        initdb.arg("-D").arg(cluster.dir.path().join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        check(initdb);
        if let Some((cert, key)) = tls {
            let data = cluster.dir.path().join("data");
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            std::fs::set_permissions(
                data.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
            if cluster.as_postgres_user {
                let mut chown = Command::new("chown");
                chown
                    .arg("postgres")
                    .arg(data.join("server.crt"))
                    .arg(data.join("server.key"));
                check(chown);
            }
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap();
            std::io::Write::write_all(&mut conf, b"ssl = on\n").unwrap();
        }
        cluster.pg_ctl(&["start", "-w"]);
        cluster
    }

    /// `program`, run as the cluster's owner.
    fn command(&self, program: PathBuf) -> Command {
        let mut command = if self.as_postgres_user {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    fn pg_ctl_command(&self, args: &[&str]) -> Command {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let mut command = self.command(self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options])
            .args(args);
        command
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        check(self.pg_ctl_command(args));
    }

    /// As if the database crashed: no clean shutdown.
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl_command(&["stop", "-m", "immediate"]).output();
    }
}

fn check(mut command: Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
