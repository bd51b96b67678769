//! Faults a fault test injects into what `make test` / `make chaos` started for it: the local
//! cluster's API server and etcd (restarted through `hack/cluster/up.sh`) and the throwaway
//! PostgreSQL of `hack/postgres.sh` (stopped and started on its port). Each checks that the
//! process it touches belongs to that harness (its state directory on the command line) and
//! touches nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::chart::repo_root;

/// The local cluster's state directory: where `KUBECONFIG` lives (`hack/cluster/up.sh` writes
/// `$HEXA_CLUSTER_DIR/kubeconfig`).
pub fn cluster_dir() -> PathBuf {
    let kc = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let dir = Path::new(&kc).parent().expect("KUBECONFIG's directory").to_path_buf();
    assert!(dir.join("run/kube-apiserver.pid").is_file(), "{} is not a hack/cluster state directory: the fault tests need the local cluster", dir.display());
    dir
}

/// The pid of a control-plane component of the cluster in `dir`, if it runs.
fn component_pid(dir: &Path, component: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(format!("run/{component}.pid"))).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(&format!("{}/", dir.display())).then_some(pid)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie of an exited child of ours still has /proc; its state says so.
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z")) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// What a control-plane restart took.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// From the stop signal until the API server answered again.
    pub down: Duration,
}

/// Stops the API server and etcd (SIGTERM, SIGKILL after 20 s) and starts them again with
/// `hack/cluster/up.sh`, which returns once the API server is healthy. Blocking: call it from
/// `spawn_blocking`.
pub fn restart_control_plane() -> Outage {
    let dir = cluster_dir();
    let t0 = Instant::now();
    for component in ["kube-apiserver", "etcd"] {
        let pid = component_pid(&dir, component).unwrap_or_else(|| panic!("{component} of {} is not running", dir.display()));
        signal(pid, "TERM");
        if !wait_gone(pid, Duration::from_secs(20)) {
            signal(pid, "KILL");
            assert!(wait_gone(pid, Duration::from_secs(10)), "{component} ({pid}) did not stop");
        }
    }
    let out = Command::new("bash").arg(repo_root().join("hack/cluster/up.sh")).env("HEXA_CLUSTER_DIR", &dir).output().expect("run hack/cluster/up.sh");
    assert!(out.status.success(), "hack/cluster/up.sh failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Outage { down: t0.elapsed() }
}

/// The PostgreSQL `hack/postgres.sh start` made (its directory under the temp dir, its port
/// in `TEST_POSTGRES_URL`).
pub struct Postgres {
    dir: PathBuf,
    pg_ctl: PathBuf,
    /// postgres' own command-line options, as it recorded them (`postmaster.opts`).
    options: String,
}

impl Postgres {
    pub fn of_tests() -> Postgres {
        let url = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL (hack/postgres.sh start)");
        let port = url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()).unwrap_or_default().to_string();
        let dir = std::env::temp_dir().join("hexabase-pg-test");
        let recorded = std::fs::read_to_string(dir.join("port")).unwrap_or_default();
        assert_eq!(recorded.trim(), port, "{} is not the PostgreSQL of TEST_POSTGRES_URL ({url})", dir.display());
        let opts = std::fs::read_to_string(dir.join("data/postmaster.opts")).expect("postmaster.opts");
        // `/usr/lib/postgresql/15/bin/postgres "-D" "<dir>" "-c" "port=…" …`
        let (postgres, rest) = opts.trim().split_once(' ').expect("postgres and its options");
        let data = format!("\"{}\"", dir.join("data").display());
        let options = rest.replacen(&format!("\"-D\" {data}"), "", 1).trim().to_string();
        let pg_ctl = Path::new(postgres).with_file_name("pg_ctl");
        Postgres { dir, pg_ctl, options }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        cmd.arg("-D").arg(&data);
        let out = cmd.args(args).output().expect("run pg_ctl");
        assert!(out.status.success(), "pg_ctl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts it again on the same port with the same options; returns once it accepts.
    pub fn start(&self) {
        let log = self.dir.join("server.log").display().to_string();
        self.pg_ctl(&["-l", &log, "-w", "-o", &self.options, "start"]);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
}
