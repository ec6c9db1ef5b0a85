//! A three-member PostgreSQL cluster managed by Patroni in synchronous mode, on a single-node etcd,
//! all on 127.0.0.1 under one temp dir (Debian's `patroni` and `etcd-server`; `reliability/ha`
//! installs them). Patroni is real: it elects the leader, fails over, and rejoins the old primary
//! (pg_rewind). Dropping the cluster stops everything it started.

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SCOPE: &str = "cpha";
pub const MEMBERS: usize = 3;

/// One member: its Patroni process, REST and PostgreSQL ports, data directory.
pub struct Member {
    pub name: String,
    pub rest_port: u16,
    pub pg_port: u16,
    pub data_dir: PathBuf,
    patroni: Child,
}

/// What Patroni's `GET /cluster` says of one member.
#[derive(Debug, Clone)]
pub struct MemberState {
    pub name: String,
    pub role: String,
    pub state: String,
}

pub struct Cluster {
    pub members: Vec<Member>,
    etcd: Child,
    http: reqwest::Client,
    /// Held (flock) while the cluster runs: a dir whose lock is free belongs to a run that died.
    _lock: std::fs::File,
    // Last: removed once every process is gone.
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    crate::common::binary::free_port()
}

/// Patroni (and so PostgreSQL) refuses to run as root: then it runs as `postgres`.
fn service_user() -> Option<User> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    Some(User::from_name("postgres").expect("users").expect("a `postgres` user (Debian's postgresql-common creates it)"))
}

/// A child that gets SIGKILL when the test's thread ends (a test that dies leaves nothing behind),
/// running as `user` when given.
fn spawn(mut cmd: Command, log: &Path, user: Option<&User>) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("log")).stderr(out);
    if let Some(u) = user {
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
    // SAFETY: one async-signal-safe system call between fork and exec (after the uid change, which
    // would clear it).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (reliability/ha installs patroni and etcd-server)"))
}

fn member_config(dir: &Path, name: &str, rest: u16, pg: u16, etcd: u16, bin_dir: &Path) -> String {
    let d = dir.display();
    let b = bin_dir.display();
    // ttl, loop_wait and retry_timeout are Patroni's smallest allowed (loop_wait + 2 × retry_timeout
    // ≤ ttl); primary_start_timeout 0 fails over at once instead of restarting a crashed primary
    // in place; synchronous_mode_strict keeps writes waiting rather than unreplicated. A standby
    // whose primary died retries its WAL stream every wal_retrieve_retry_interval (5 s by default):
    // until the remaining standby streams from the new primary, strict mode holds every commit.
    format!(
        r#"scope: {SCOPE}
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 16777216
    synchronous_mode: true
    synchronous_mode_strict: true
    primary_start_timeout: 0
    master_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 100
        synchronous_commit: 'on'
        wal_retrieve_retry_interval: 500ms
  initdb:
  - encoding: UTF8
  - auth-local: trust
  - auth-host: trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {d}/{name}
  bin_dir: {b}
  pgpass: {d}/pgpass-{name}
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '{d}'
"#
    )
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian's `patroni` and `etcd-server` when missing, by `reliability/ha install` (the
/// one place that knows how: apt-get, through sudo unless root).
fn ensure_installed() {
    if on_path("patroni") && on_path("etcd") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reliability/ha");
    let status = Command::new(script).arg("install").status().expect("run reliability/ha install");
    assert!(status.success(), "reliability/ha install failed ({status}): patroni and etcd-server are needed");
}

impl Cluster {
    /// Starts etcd and the three Patroni members; answers once a leader and a synchronous standby run.
    pub async fn start() -> Cluster {
        ensure_installed();
        remove_stale_clusters();
        let bin_dir = creditphone::pg::embedded::PgBinaries::ensure().expect("PostgreSQL server binaries").bin_dir;
        let user = service_user();
        let dir = tempfile::Builder::new().prefix("cp-ha-").tempdir_in("/tmp").expect("tempdir");
        if let Some(u) = &user {
            nix::unistd::chown(dir.path(), Some(u.uid), Some(u.gid)).expect("chown the cluster dir");
        }
        let lock = std::fs::File::create(dir.path().join(LOCK_FILE)).expect("lock file");
        #[allow(deprecated)]
        nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), nix::fcntl::FlockArg::LockExclusiveNonblock).expect("lock the dir");
        let (etcd_port, peer_port) = (free_port(), free_port());
        let mut etcd = Command::new("etcd");
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        etcd.args(["--name", "ha", "--data-dir"]).arg(dir.path().join("etcd"));
        etcd.args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url]);
        etcd.args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url]);
        etcd.args(["--initial-cluster", &format!("ha={peer_url}")]);
        let etcd = spawn(etcd, &dir.path().join("etcd.log"), None);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        wait_until(Duration::from_secs(30), "etcd answers", || async {
            http.get(format!("{client_url}/health")).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        let mut members = Vec::new();
        for i in 1..=MEMBERS {
            let (name, rest_port, pg_port) = (format!("pg{i}"), free_port(), free_port());
            let config = dir.path().join(format!("{name}.yml"));
            std::fs::write(&config, member_config(dir.path(), &name, rest_port, pg_port, etcd_port, &bin_dir)).expect("write config");
            let mut cmd = Command::new("patroni");
            cmd.arg(&config).env("HOME", dir.path());
            let patroni = spawn(cmd, &dir.path().join(format!("{name}.log")), user.as_ref());
            members.push(Member { data_dir: dir.path().join(&name), name, rest_port, pg_port, patroni });
        }
        let cluster = Cluster { members, etcd, http, _lock: lock, dir };
        cluster.wait_healthy(None, Duration::from_secs(120)).await;
        cluster
    }

    /// The service's `database.url`: every member, only the one that takes writes.
    pub fn url(&self, db: &str) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| format!("127.0.0.1:{}", m.pg_port)).collect();
        format!("postgresql://postgres@{}/{db}?target_session_attrs=read-write&connect_timeout=2", hosts.join(","))
    }

    /// Patroni's view of the cluster, from the first member that answers.
    pub async fn states(&self) -> Vec<MemberState> {
        for m in &self.members {
            let Ok(r) = self.http.get(format!("http://127.0.0.1:{}/cluster", m.rest_port)).send().await else { continue };
            let Ok(v) = r.json::<Value>().await else { continue };
            let members = v["members"].as_array().cloned().unwrap_or_default();
            return members
                .iter()
                .map(|m| MemberState {
                    name: m["name"].as_str().unwrap_or("").to_string(),
                    role: m["role"].as_str().unwrap_or("").to_string(),
                    state: m["state"].as_str().unwrap_or("").to_string(),
                })
                .collect();
        }
        Vec::new()
    }

    /// The running leader, if there is one.
    pub async fn leader(&self) -> Option<String> {
        self.states().await.into_iter().find(|m| m.role == "leader" && m.state == "running").map(|m| m.name)
    }

    /// Waits until every member runs, one the leader (not `not`) and one its synchronous standby:
    /// answers the leader's name.
    pub async fn wait_healthy(&self, not: Option<&str>, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let states = self.states().await;
            let running = states.iter().filter(|m| m.state == "running" || m.state == "streaming").count();
            let leader = states.iter().find(|m| m.role == "leader" && m.state == "running" && Some(m.name.as_str()) != not);
            let sync = states.iter().any(|m| m.role == "sync_standby");
            if let Some(leader) = leader
                && running == MEMBERS
                && sync
                && self.streaming_to(&leader.name).await == MEMBERS - 1
            {
                return leader.name.clone();
            }
            assert!(started.elapsed() < within, "the cluster is not healthy within {within:?}: {states:?}\n{}", self.log_tails());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many standbys stream from `leader` (its `pg_stat_replication`). Patroni reports a
    /// rejoining old primary `running` before it has been rewound and streams: only streaming
    /// standbys can confirm a commit after the next failover.
    async fn streaming_to(&self, leader: &str) -> usize {
        let Some(m) = self.members.iter().find(|m| m.name == leader) else { return 0 };
        let url = format!("postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout=2", m.pg_port);
        let Ok(config) = url.parse::<tokio_postgres::Config>() else { return 0 };
        let Ok(client) = creditphone::db::connect(&config).await else { return 0 };
        let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        client.query_one(sql, &[]).await.map_or(0, |r| r.get::<_, i64>(0) as usize)
    }

    /// SIGKILL of the named member's postmaster (Patroni on that member lives on).
    pub fn kill_postmaster(&self, name: &str) {
        let member = self.members.iter().find(|m| m.name == name).expect("a member");
        let pid = postmaster_pid(&member.data_dir).expect("the primary's postmaster.pid");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the postmaster");
    }

    /// Waits until a member other than `old` leads and runs: answers when that was first seen.
    pub async fn wait_new_leader(&self, old: &str, within: Duration) -> (String, Instant) {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.leader().await
                && leader != old
            {
                return (leader, Instant::now());
            }
            assert!(started.elapsed() < within, "no new leader within {within:?}: {:?}\n{}", self.states().await, self.log_tails());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Copies every member's and etcd's log to a dir that outlives the run (for a failure's
    /// post-mortem); answers where.
    pub fn keep_logs(&self) -> PathBuf {
        let kept = std::env::temp_dir().join(format!("cp-ha-logs-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&kept);
        for name in self.members.iter().map(|m| m.name.as_str()).chain(["etcd"]) {
            let _ = std::fs::copy(self.dir.path().join(format!("{name}.log")), kept.join(format!("{name}.log")));
        }
        kept
    }

    pub fn log_tails(&self) -> String {
        self.members.iter().map(|m| crate::common::binary::log_tail(&self.dir.path().join(format!("{}.log", m.name)), 40)).collect()
    }
}

const LOCK_FILE: &str = "ha.lock";

/// Runs that died (SIGKILLed tests) leave their PostgreSQL servers behind: Patroni and etcd die
/// with the test (the death signal), but the servers Patroni started do not. Their dirs' locks are
/// free: the servers are killed and the dirs removed.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("cp-ha-") {
            continue;
        }
        let Ok(lock) = std::fs::File::open(path.join(LOCK_FILE)) else { continue };
        #[allow(deprecated)]
        let free = nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok();
        if !free {
            continue;
        }
        for i in 1..=MEMBERS {
            if let Some(pid) = postmaster_pid(&path.join(format!("pg{i}"))) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// The postmaster running on `data_dir`, from its `postmaster.pid`, if that process still runs it
/// (a stale file's pid may belong to another process by now).
fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline).contains(&*data_dir.to_string_lossy()).then_some(pid)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Patroni stops its PostgreSQL on SIGTERM; whatever is left (a member mid-restart) is killed.
        for m in &self.members {
            let _ = kill(Pid::from_raw(m.patroni.id() as i32), Signal::SIGTERM);
        }
        let started = Instant::now();
        for m in &mut self.members {
            while matches!(m.patroni.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = m.patroni.kill();
            let _ = m.patroni.wait();
            if let Some(pid) = postmaster_pid(&m.data_dir) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

/// Polls `check` until it holds; panics naming `what` after `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
