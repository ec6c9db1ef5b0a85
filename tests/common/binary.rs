//! The real `creditphone` binary as a child process: the one launcher for every test that starts
//! `creditphone serve` (or runs another subcommand), so that the port, the cleaned environment, the
//! log file, the readiness wait and the clean-up are written once.
//!
//! The waits are async (a test's runtime goes on running its tasks); a test without a runtime
//! has `wait_ready_blocking`.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A dropped child gets this long to stop by itself after SIGTERM (an embedded cluster shuts down
/// before its temp dir is removed) before it is SIGKILLed.
const DROP_GRACE: Duration = Duration::from_secs(15);
/// How often a wait looks at the child again.
const POLL: Duration = Duration::from_millis(50);

/// A loopback port free right now (the service binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The URL of a database of the shared test cluster, as `database.url` takes it.
pub fn cluster_url(pg: &tokio_postgres::Config) -> String {
    let c = super::cluster();
    let db = pg.get_dbname().expect("a database name");
    format!("postgresql://{}@/{}?host={}&port={}", c.user, db, c.socket_dir.display(), c.port)
}

/// The last `lines` lines of a log file, headed by its path (for failure messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!("--- {} ---\n{}", path.display(), all[all.len().saturating_sub(lines)..].join("\n"))
}

/// How to run the binary: working dir (where the log goes), config dir, port and settings.
/// Only what a test sets is passed: every inherited `CREDITPHONE*` variable is removed.
#[derive(Clone, Debug)]
pub struct ServeBinary {
    dir: PathBuf,
    config_dir: PathBuf,
    port: u16,
    log_name: String,
    env: Vec<(String, OsString)>,
}

impl ServeBinary {
    /// Runs in `dir`, logs to `dir/serve.log`, on a free port, with the repository's `config/`.
    pub fn new(dir: impl Into<PathBuf>) -> ServeBinary {
        ServeBinary {
            dir: dir.into(),
            config_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/config").into(),
            port: free_port(),
            log_name: "serve.log".to_string(),
            env: Vec::new(),
        }
    }

    /// On a database of the shared test cluster (`data_dir` under `dir` all the same, so that a
    /// URL not taken would show as an embedded cluster there), one worker, PII keys other than the
    /// in-process apps' and no EOD: the setting the log-scanning tests share.
    pub fn on_test_database(dir: &Path, pg: &tokio_postgres::Config, admin_key: &str) -> ServeBinary {
        ServeBinary::new(dir)
            .database_url(&cluster_url(pg))
            .data_dir(dir.join("var"))
            .workers(1)
            .admin_key(admin_key)
            .pii_keys(&"33".repeat(32), &"44".repeat(32))
            .eod_enabled(false)
    }

    pub fn on_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = dir.into();
        self
    }

    /// The file in `dir` that the next spawn writes stdout and stderr to (truncated first).
    pub fn log_file(mut self, name: impl Into<String>) -> Self {
        self.log_name = name.into();
        self
    }

    /// Any variable; a later value of the same name replaces the earlier one.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn database_url(self, url: &str) -> Self {
        self.env("CREDITPHONE__DATABASE__URL", url)
    }

    /// Where the embedded cluster lives when no database URL is given.
    pub fn data_dir(self, path: impl AsRef<Path>) -> Self {
        self.env("CREDITPHONE__DATABASE__DATA_DIR", path.as_ref())
    }

    pub fn admin_key(self, key: &str) -> Self {
        self.env("CREDITPHONE__AUTH__ADMIN_KEY", key)
    }

    pub fn workers(self, n: u32) -> Self {
        self.env("CREDITPHONE__SERVER__WORKERS", n.to_string())
    }

    pub fn pii_keys(self, hash_key: &str, encryption_key: &str) -> Self {
        self.env("CREDITPHONE__PII__HASH_KEY", hash_key).env("CREDITPHONE__PII__ENCRYPTION_KEY", encryption_key)
    }

    pub fn eod_enabled(self, on: bool) -> Self {
        self.env("CREDITPHONE__EOD__ENABLED", on.to_string())
    }

    pub fn notices_enabled(self, on: bool) -> Self {
        self.env("CREDITPHONE__NOTICES__ENABLED", on.to_string())
    }

    pub fn log_level(self, level: &str) -> Self {
        self.env("CREDITPHONE__LOG__LEVEL", level)
    }

    pub fn log_format(self, format: &str) -> Self {
        self.env("CREDITPHONE__LOG__FORMAT", format)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(&self.log_name)
    }

    /// The binary with `args` (a subcommand) and these settings; its output is left to the caller
    /// (`output()` captures it). The child gets SIGKILL if the spawning thread ends, so that a
    /// test that dies leaves no service behind.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditphone"));
        cmd.arg("--config-dir").arg(&self.config_dir).args(args).current_dir(&self.dir).stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CREDITPHONE") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CREDITPHONE__SERVER__PORT", self.port.to_string());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        // SAFETY: only an async-signal-safe system call between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
                Ok(())
            });
        }
        cmd
    }

    /// `creditphone serve`.
    pub fn spawn(&self) -> RunningServe {
        self.spawn_subcommand(&["serve"])
    }

    /// Any subcommand as a child, stdout and stderr to the log file.
    pub fn spawn_subcommand(&self, args: &[&str]) -> RunningServe {
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path).expect("create the log file");
        let child = self.command(args).stdout(log.try_clone().expect("log file")).stderr(log).spawn().expect("spawn creditphone");
        RunningServe { port: self.port, base_url: self.base_url(), log_path, child }
    }
}

/// A spawned binary; stopped when dropped (SIGTERM, then SIGKILL after [`DROP_GRACE`]) and reaped.
pub struct RunningServe {
    pub port: u16,
    pub base_url: String,
    pub log_path: PathBuf,
    pub child: Child,
}

impl RunningServe {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Waits until `/readyz` answers 200 and answers how long that took; panics with the log's
    /// tail if the child exits first or `limit` passes. Async so that the caller's runtime keeps
    /// running its tasks (a client's pooled connections notice a stopped server meanwhile).
    pub async fn wait_ready(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.ready_yet(started, limit) {
            tokio::time::sleep(POLL).await;
        }
        started.elapsed()
    }

    /// [`Self::wait_ready`] for a test without a runtime.
    pub fn wait_ready_blocking(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.ready_yet(started, limit) {
            std::thread::sleep(POLL);
        }
        started.elapsed()
    }

    fn ready_yet(&mut self, started: Instant, limit: Duration) -> bool {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("serve exited ({status}):\n{}", self.log_tail(40));
        }
        let ready = readyz_answers_200(self.port);
        assert!(ready || started.elapsed() < limit, "serve not ready within {limit:?}:\n{}", self.log_tail(40));
        ready
    }

    /// The exit status once the child has exited, or `None` if it still runs after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signal the child");
    }

    /// SIGTERM, then the exit status; panics with the log's tail if it still runs after `limit`.
    pub async fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        match self.wait_exit(limit).await {
            Some(status) => status,
            None => panic!("serve did not stop within {limit:?} of SIGTERM:\n{}", self.log_tail(40)),
        }
    }

    /// SIGKILL (a crash), then the exit status.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap the child")
    }
}

impl Drop for RunningServe {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Blocking: drop cannot await, and the test is done with its runtime's work by now.
            let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
            let started = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) && started.elapsed() < DROP_GRACE {
                std::thread::sleep(POLL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET /readyz` over HTTP/1.0 (no client library: it works with or without a runtime).
fn readyz_answers_200(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && (head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"))
}
