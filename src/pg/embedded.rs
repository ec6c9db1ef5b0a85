//! Embedded PostgreSQL: when no `database.url` is configured, creditphone creates (first run)
//! and starts a PostgreSQL cluster of its own under a directory (default `var/`), using the
//! machine's PostgreSQL server binaries, and stops it cleanly on shutdown. Tests use the same
//! code to make a throwaway cluster per test run.
//!
//! Layout of `dir`:
//! - `dir/creditphone.lock` — `flock`ed for the cluster's lifetime, holds the owner's pid;
//! - `dir/pgdata/`          — the cluster (created by `initdb` in `dir/pgdata.initdb`, then renamed);
//! - `dir/run/`             — the unix socket directory (or `/tmp/cp-<hash>` if that path is too
//!   long for a unix socket); `dir/socket-dir` records which one is in use;
//! - `dir/postgres.log`     — output of `initdb` and the server's own log (stderr).
//!
//! The postmaster is our own child process (no `pg_ctl`), listens on the unix socket only
//! (`listen_addresses=''`), and, when started as root, runs as an unprivileged user (`postgres`
//! if it exists, else `nobody`), because PostgreSQL refuses to run as root.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Gid, Pid, Uid, User, chown};
use tokio::sync::watch;

/// Name of the cluster's superuser role (`initdb -U`). Fixed rather than derived from the OS
/// user, so that URLs stay the same whoever (root or not) starts the cluster later.
pub const SUPERUSER: &str = "postgres";
/// Port number of the cluster. Connections go over the private unix socket directory only (no
/// TCP), so the conventional number cannot conflict with another server; it only names the
/// socket file (`.s.PGSQL.5432`) and is the same for every run on a given directory.
pub const DEFAULT_PORT: u16 = 5432;
/// Default database created on first start.
pub const DEFAULT_DB_NAME: &str = "creditphone";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// `sizeof(sockaddr_un.sun_path) - 1`: the longest unix socket path the kernel accepts.
const SOCKET_PATH_MAX: usize = 107;
const LOG_TAIL_LINES: usize = 25;
const INSTALL_HINT: &str = "sudo apt-get install -y postgresql";

/// Errors callers may want to tell apart (everything else is a plain `anyhow::Error`).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error("another creditphone is already running on {} ({})", .dir.display(), pid_text(*.pid))]
    AlreadyRunning { dir: PathBuf, pid: Option<u32> },
    #[error("PostgreSQL server binaries not found (initdb, postgres); install them with: {INSTALL_HINT}")]
    BinariesNotFound,
    #[error(
        "PostgreSQL must run as the unprivileged user '{user}', which cannot reach {} (a directory on the way is not searchable by it); use a data directory it can reach, e.g. /var/lib/creditphone or /srv/creditphone",
        .dir.display()
    )]
    DirNotReachable { dir: PathBuf, user: String },
}

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// A directory holding PostgreSQL server binaries (`initdb`, `postgres`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Major version, e.g. "15" (or "9.6" for old releases).
    pub version: String,
}

impl PgBinaries {
    /// Finds `initdb` + `postgres` on PATH or under /usr/lib/postgresql/*/bin (highest major wins).
    pub fn find() -> Option<PgBinaries> {
        candidates().into_iter().max_by_key(|b| version_key(&b.version))
    }

    /// Like [`PgBinaries::find`], restricted to one major version (e.g. the one an existing
    /// cluster was created with).
    pub fn find_version(major: &str) -> Option<PgBinaries> {
        candidates().into_iter().find(|b| b.version == major)
    }

    /// [`PgBinaries::find`], or if missing and running as root with apt-get available, installs
    /// the `postgresql` package and looks again.
    pub fn ensure() -> anyhow::Result<PgBinaries> {
        if let Some(found) = Self::find() {
            return Ok(found);
        }
        if nix::unistd::geteuid().is_root()
            && let Some(apt_get) = find_on_path("apt-get")
        {
            tracing::info!("PostgreSQL server binaries not found; installing them with apt-get (running: apt-get update)");
            let started = Instant::now();
            run_apt(Command::new(&apt_get).arg("update"));
            tracing::info!("running: DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql");
            run_apt(Command::new(&apt_get).env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "postgresql"]));
            if let Some(found) = Self::find() {
                tracing::info!(
                    bin_dir = %found.bin_dir.display(),
                    version = %found.version,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "installed PostgreSQL server binaries"
                );
                return Ok(found);
            }
        }
        Err(EmbeddedPgError::BinariesNotFound.into())
    }

    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    pub fn postgres(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }
}

fn run_apt(cmd: &mut Command) {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::warn!(status = %out.status, stderr = %last_lines(&stderr, 10), "apt-get failed");
        }
        Err(e) => tracing::warn!(error = %e, "could not run apt-get"),
    }
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable_file(p))
}

/// All directories with both `initdb` and `postgres`, canonicalized (Debian puts symlinks in
/// e.g. /usr/local/bin), deduplicated, each with its major version.
fn candidates() -> Vec<PgBinaries> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versioned: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect();
        versioned.sort();
        dirs.extend(versioned);
    }
    let mut found: Vec<PgBinaries> = Vec::new();
    for dir in dirs {
        if !is_executable_file(&dir.join("initdb")) || !is_executable_file(&dir.join("postgres")) {
            continue;
        }
        // The real directory of the server binary (initdb looks for postgres next to itself).
        let Some(bin_dir) = fs::canonicalize(dir.join("postgres")).ok().and_then(|p| p.parent().map(Path::to_path_buf)) else {
            continue;
        };
        if !is_executable_file(&bin_dir.join("initdb")) || found.iter().any(|b| b.bin_dir == bin_dir) {
            continue;
        }
        if let Some(version) = major_version(&bin_dir) {
            found.push(PgBinaries { bin_dir, version });
        }
    }
    found
}

/// Major version of the server in `bin_dir`: from `postgres --version`
/// ("postgres (PostgreSQL) 15.18 (Debian ...)"), else from a /usr/lib/postgresql/N/bin path.
fn major_version(bin_dir: &Path) -> Option<String> {
    let from_binary = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split(')').nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(major_of)
        });
    from_binary.or_else(|| {
        let parent = bin_dir.parent()?;
        let name = parent.file_name()?.to_str()?;
        major_of(name)
    })
}

/// "15.18" -> "15", "16beta1" -> "16", "9.6.24" -> "9.6".
fn major_of(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let first: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
    let first_num: u32 = first.parse().ok()?;
    if first_num >= 10 {
        return Some(first);
    }
    let second: String = parts.next().unwrap_or("0").chars().take_while(char::is_ascii_digit).collect();
    Some(format!("{first_num}.{}", second.parse::<u32>().unwrap_or(0)))
}

fn version_key(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// How and where to run the embedded cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// e.g. `var/`; the cluster lives in dir/pgdata, sockets in dir/run, log in dir/postgres.log.
    pub dir: PathBuf,
    /// Database created on first start (default "creditphone").
    pub db_name: String,
    /// Passed to the server as `-c key=value` (e.g. fsync=off for tests).
    pub extra_settings: Vec<(String, String)>,
    /// `PR_SET_PDEATHSIG` so the postmaster dies (immediate shutdown) if our process is killed.
    pub die_with_parent: bool,
}

impl ClusterOptions {
    pub fn new(dir: impl Into<PathBuf>) -> ClusterOptions {
        ClusterOptions { dir: dir.into(), db_name: DEFAULT_DB_NAME.to_string(), extra_settings: Vec::new(), die_with_parent: true }
    }

    /// Settings that make a throwaway test cluster fast (no durability).
    pub fn fast_unsafe_settings() -> Vec<(String, String)> {
        [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn wants_no_sync(&self) -> bool {
        self.extra_settings.iter().any(|(k, v)| k == "fsync" && matches!(v.as_str(), "off" | "false" | "0" | "no"))
    }
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions::new("var")
    }
}

// ---------------------------------------------------------------------------------------------
// The OS user the server runs as
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RunAs {
    uid: Uid,
    gid: Gid,
    name: String,
    /// We are root and must switch to `uid`/`gid` in the child.
    switch: bool,
}

impl RunAs {
    fn choose(pgdata: &Path) -> anyhow::Result<RunAs> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            let name = User::from_uid(euid).ok().flatten().map(|u| u.name).unwrap_or_else(|| euid.to_string());
            return Ok(RunAs { uid: euid, gid: nix::unistd::getegid(), name, switch: false });
        }
        // An existing cluster keeps running as the user that owns it.
        if pgdata.join("PG_VERSION").is_file()
            && let Ok(meta) = fs::metadata(pgdata)
            && !Uid::from_raw(meta.uid()).is_root()
        {
            let uid = Uid::from_raw(meta.uid());
            let user = User::from_uid(uid).ok().flatten();
            return Ok(RunAs {
                uid,
                gid: user.as_ref().map(|u| u.gid).unwrap_or_else(|| Gid::from_raw(meta.gid())),
                name: user.map(|u| u.name).unwrap_or_else(|| uid.to_string()),
                switch: true,
            });
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(user)) = User::from_name(name)
                && !user.uid.is_root()
            {
                return Ok(RunAs { uid: user.uid, gid: user.gid, name: user.name, switch: true });
            }
        }
        bail!(
            "running as root, but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as; create one (sudo adduser --system postgres) or run creditphone as an ordinary user"
        )
    }

    /// A command that runs as this user, with stdin closed and `/` as working directory (the
    /// caller's may not be reachable by the unprivileged user).
    fn command(&self, program: impl AsRef<OsStr>, opts: ChildOpts) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/").stdin(Stdio::null());
        let (uid, gid, switch) = (self.uid, self.gid, self.switch);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec; it only makes
        // async-signal-safe system calls and does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                let os_err = |e: Errno| io::Error::from_raw_os_error(e as i32);
                if opts.new_session {
                    // Own session/process group: a Ctrl-C at the terminal reaches only us, and we
                    // decide when and how the server shuts down.
                    nix::unistd::setsid().map_err(os_err)?;
                }
                if switch {
                    nix::unistd::setgroups(&[gid]).map_err(os_err)?;
                    nix::unistd::setgid(gid).map_err(os_err)?;
                    nix::unistd::setuid(uid).map_err(os_err)?;
                }
                if opts.die_with_parent {
                    // After the uid change: changing credentials clears the death signal.
                    // Note: "parent" is the *thread* that forked us, so callers fork from a
                    // thread that lives as long as the child.
                    nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(os_err)?;
                    if nix::unistd::getppid() != parent {
                        // The parent died before the death signal was armed.
                        return Err(io::Error::from_raw_os_error(libc::ESRCH));
                    }
                }
                Ok(())
            });
        }
        cmd
    }

    /// Fails with a clear error if this user cannot traverse to `dir` (e.g. it sits under
    /// /root, mode 0700). Tested by running `test -x dir` as that user.
    fn check_reachable(&self, dir: &Path) -> anyhow::Result<()> {
        if !self.switch {
            return Ok(());
        }
        let status = self.command("test", ChildOpts::default()).arg("-x").arg(dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(_) => Err(EmbeddedPgError::DirNotReachable { dir: dir.to_path_buf(), user: self.name.clone() }.into()),
            Err(e) => {
                tracing::warn!(error = %e, "could not check that {} can reach {}", self.name, dir.display());
                Ok(())
            }
        }
    }

    fn chown(&self, path: &Path) -> anyhow::Result<()> {
        if self.switch {
            chown(path, Some(self.uid), Some(self.gid)).with_context(|| format!("chown {} to {}", path.display(), self.name))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ChildOpts {
    new_session: bool,
    die_with_parent: bool,
}

// ---------------------------------------------------------------------------------------------
// The postmaster child process
// ---------------------------------------------------------------------------------------------

/// The running postmaster, spawned and waited for by a dedicated thread.
///
/// The thread matters for `PR_SET_PDEATHSIG`: Linux sends the death signal when the *thread*
/// that forked the child exits, not the process. A tokio worker or blocking-pool thread may exit
/// long before the server should (the blocking pool reaps idle threads after 10 s), so the
/// thread that spawns the postmaster stays alive, waiting for it, until it exits.
struct Postmaster {
    pid: Pid,
    /// Set (under the lock) once the child has exited but before it is reaped, so a signal sent
    /// while holding the lock and seeing `false` cannot hit a recycled pid.
    exited: Arc<Mutex<bool>>,
    exit_rx: watch::Receiver<Option<String>>,
}

impl Postmaster {
    fn spawn(mut cmd: Command) -> anyhow::Result<Postmaster> {
        let exited = Arc::new(Mutex::new(false));
        let exited_in_thread = exited.clone();
        let (exit_tx, exit_rx) = watch::channel(None);
        let (pid_tx, pid_rx) = std::sync::mpsc::channel::<io::Result<u32>>();
        std::thread::Builder::new()
            .name("pg-postmaster".to_string())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(child) => child,
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                        return;
                    }
                };
                let pid = Pid::from_raw(child.id() as i32);
                let _ = pid_tx.send(Ok(child.id()));
                while let Err(Errno::EINTR) = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {}
                *exited_in_thread.lock().unwrap_or_else(|e| e.into_inner()) = true;
                let status = match child.wait() {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("unknown status ({e})"),
                };
                let _ = exit_tx.send(Some(status));
            })
            .context("could not start the thread that runs PostgreSQL")?;
        let pid = pid_rx
            .recv()
            .map_err(|_| anyhow!("the thread that runs PostgreSQL ended unexpectedly"))?
            .context("could not start postgres")?;
        Ok(Postmaster { pid: Pid::from_raw(pid as i32), exited, exit_rx })
    }

    /// Sends `sig` unless the process has already exited; returns whether it was sent.
    fn signal(&self, sig: Signal) -> bool {
        let exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        !*exited && kill(self.pid, sig).is_ok()
    }

    /// The exit status, once the process has exited and been reaped.
    fn exit_status(&self) -> Option<String> {
        if let Some(status) = self.exit_rx.borrow().clone() {
            return Some(status);
        }
        // The sender is gone without a value only if the thread panicked.
        if self.exit_rx.has_changed().is_err() {
            return Some("unknown status".to_string());
        }
        None
    }

    async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let waited = tokio::time::timeout(timeout, self.exit_rx.wait_for(|s| s.is_some())).await;
        // Ok(Ok(_)): exited; Ok(Err(_)): the waiting thread is gone (it panicked).
        waited.is_ok()
    }

    fn wait_exit_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_status().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL cluster owned by this process. Stop it with [`EmbeddedCluster::stop`]; dropping
/// it stops it too (best effort, blocking briefly).
pub struct EmbeddedCluster {
    dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    user: String,
    os_user: String,
    created: bool,
    binaries: PgBinaries,
    postmaster: Option<Postmaster>,
    lock: Option<Flock<File>>,
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("dir", &self.dir)
            .field("socket_dir", &self.socket_dir)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("os_user", &self.os_user)
            .field("pid", &self.pid())
            .finish()
    }
}

impl EmbeddedCluster {
    /// Creates (initdb, first run) and starts the cluster; waits until it accepts connections
    /// (60 s at most, else an error with the tail of the log); creates `db_name` if missing.
    pub async fn start(opts: ClusterOptions) -> anyhow::Result<EmbeddedCluster> {
        let started = Instant::now();
        let db_name = opts.db_name.clone();
        let mut cluster = tokio::task::spawn_blocking(move || Self::prepare_and_spawn(opts))
            .await
            .context("embedded PostgreSQL start-up task failed")??;
        let ready = async {
            cluster.wait_ready().await?;
            cluster.ensure_database(&db_name).await
        }
        .await;
        if let Err(e) = ready {
            if let Err(stop_err) = cluster.stop().await {
                tracing::warn!(error = %stop_err, "could not stop PostgreSQL after a failed start");
            }
            return Err(e);
        }
        tracing::info!(
            dir = %cluster.dir.display(),
            socket_dir = %cluster.socket_dir.display(),
            pid = cluster.pid().unwrap_or(0),
            os_user = %cluster.os_user,
            version = %cluster.binaries.version,
            created = cluster.created,
            elapsed_ms = started.elapsed().as_millis() as u64,
            url = %cluster.url(&db_name),
            "embedded PostgreSQL started"
        );
        Ok(cluster)
    }

    /// Everything up to spawning the postmaster (blocking file system work, initdb).
    fn prepare_and_spawn(opts: ClusterOptions) -> anyhow::Result<EmbeddedCluster> {
        let mut binaries = PgBinaries::ensure()?;

        let dir = make_dir(&opts.dir)?;
        let lock = acquire_lock(&dir)?;
        // From here on we own `dir`: no other creditphone uses it.

        let pgdata = dir.join("pgdata");
        let run_as = RunAs::choose(&pgdata)?;
        run_as.check_reachable(&dir)?;
        stop_orphan(&pgdata)?;

        let log_path = dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&log_path)
            .with_context(|| format!("could not open {}", log_path.display()))?;
        run_as.chown(&log_path)?;

        let created = if pgdata.join("PG_VERSION").is_file() {
            let cluster_version = fs::read_to_string(pgdata.join("PG_VERSION"))
                .with_context(|| format!("could not read {}/PG_VERSION", pgdata.display()))?
                .trim()
                .to_string();
            if cluster_version != binaries.version {
                binaries = PgBinaries::find_version(&cluster_version).ok_or_else(|| {
                    anyhow!(
                        "the cluster in {} was created by PostgreSQL {cluster_version}, but the server binaries found are version {}; install PostgreSQL {cluster_version} (sudo apt-get install -y postgresql-{cluster_version}) or move {} away",
                        pgdata.display(),
                        binaries.version,
                        pgdata.display()
                    )
                })?;
            }
            false
        } else {
            if pgdata.exists() {
                tracing::warn!(
                    pgdata = %pgdata.display(),
                    "found an incomplete cluster (no PG_VERSION), probably from an interrupted initdb; recreating it"
                );
                fs::remove_dir_all(&pgdata).with_context(|| format!("could not remove {}", pgdata.display()))?;
            }
            run_initdb(&binaries, &run_as, &dir, &pgdata, &log, &opts)?;
            true
        };

        let socket_dir = socket_dir_for(&dir, DEFAULT_PORT);
        prepare_socket_dir(&socket_dir, &dir, &run_as)?;
        if let Err(e) = fs::write(dir.join("socket-dir"), format!("{}\n", socket_dir.display())) {
            tracing::warn!(error = %e, "could not record the socket directory in {}/socket-dir", dir.display());
        }

        let mut cmd = run_as.command(binaries.postgres(), ChildOpts { new_session: true, die_with_parent: opts.die_with_parent });
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&socket_dir)
            .arg("-p")
            .arg(DEFAULT_PORT.to_string())
            .args(["-c", "listen_addresses="])
            .args(["-c", "logging_collector=off"])
            .args(["-c", "unix_socket_permissions=0700"]);
        for (key, value) in &opts.extra_settings {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        let log_err = log.try_clone().context("could not duplicate the log file")?;
        cmd.stdout(log).stderr(log_err);
        tracing::info!(
            pgdata = %pgdata.display(),
            os_user = %run_as.name,
            "starting PostgreSQL {}",
            binaries.version
        );
        let postmaster = Postmaster::spawn(cmd)?;

        Ok(EmbeddedCluster {
            dir,
            pgdata,
            socket_dir,
            log_path,
            port: DEFAULT_PORT,
            user: SUPERUSER.to_string(),
            os_user: run_as.name,
            created,
            binaries,
            postmaster: Some(postmaster),
            lock: Some(lock),
        })
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut config = self.pg_config("postgres");
        config.connect_timeout(Duration::from_secs(5));
        loop {
            if let Some(status) = self.postmaster.as_ref().and_then(|p| p.exit_status()) {
                bail!("PostgreSQL exited during start-up ({status}); end of {}:\n{}", self.log_path.display(), log_tail(&self.log_path));
            }
            let last_error = match config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    drop(client);
                    let _ = connection.await;
                    return Ok(());
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!(
                    "PostgreSQL did not accept connections within {} s (last error: {last_error}); end of {}:\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_path.display(),
                    log_tail(&self.log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ensure_database(&self, db_name: &str) -> anyhow::Result<()> {
        let (client, connection) =
            self.pg_config("postgres").connect(tokio_postgres::NoTls).await.context("could not connect to the embedded PostgreSQL")?;
        let conn_task = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db_name])
            .await
            .context("could not list databases")?
            .is_some();
        if !exists {
            let sql = format!("CREATE DATABASE {}", quote_ident(db_name));
            match client.batch_execute(&sql).await {
                Ok(()) => tracing::info!(db_name, "created database"),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("could not create database {db_name}"));
                }
            }
        }
        drop(client);
        let _ = conn_task.await;
        Ok(())
    }

    /// Connection settings for `db_name`: host = socket dir, port, user, dbname.
    pub fn pg_config(&self, db_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host_path(&self.socket_dir).port(self.port).user(&self.user).dbname(db_name);
        config
    }

    /// A URL usable by libpq tools and tokio-postgres:
    /// `postgresql://USER@/DB?host=/abs/socket/dir&port=PORT`.
    pub fn url(&self, db_name: &str) -> String {
        format!(
            "postgresql://{}@/{}?host={}&port={}",
            percent_encode(self.user.as_bytes(), false),
            percent_encode(db_name.as_bytes(), false),
            percent_encode(self.socket_dir.as_os_str().as_bytes(), true),
            self.port
        )
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's superuser role name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The OS user the server runs as.
    pub fn os_user(&self) -> &str {
        &self.os_user
    }

    /// The (absolute) directory given in [`ClusterOptions::dir`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.pgdata
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// Whether this start created the cluster (ran initdb).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().filter(|p| p.exit_status().is_none()).map(|p| p.pid.as_raw() as u32)
    }

    /// Removes the short socket directory under /tmp (not dir/run) once the server is gone;
    /// it is empty then, and recreated on the next start.
    fn remove_private_socket_dir(&self) {
        if !self.socket_dir.starts_with(&self.dir) {
            let _ = fs::remove_dir(&self.socket_dir);
        }
    }

    /// Fast shutdown (SIGINT to the postmaster), wait for exit (30 s, then SIGQUIT), release
    /// the lock. Idempotent.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut postmaster) = self.postmaster.take() else {
            self.lock = None;
            return Ok(());
        };
        let started = Instant::now();
        let pid = postmaster.pid;
        postmaster.signal(Signal::SIGINT);
        let mut result = Ok(());
        if !postmaster.wait_exit(STOP_TIMEOUT).await {
            tracing::warn!(%pid, "PostgreSQL did not stop within {} s; sending SIGQUIT", STOP_TIMEOUT.as_secs());
            postmaster.signal(Signal::SIGQUIT);
            if !postmaster.wait_exit(QUIT_TIMEOUT).await {
                postmaster.signal(Signal::SIGKILL);
                if !postmaster.wait_exit(QUIT_TIMEOUT).await {
                    result = Err(anyhow!("could not stop PostgreSQL (pid {pid})"));
                }
            }
        }
        if result.is_ok() {
            self.remove_private_socket_dir();
        }
        self.lock = None;
        if result.is_ok() {
            tracing::info!(
                dir = %self.dir.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                status = %postmaster.exit_status().unwrap_or_default(),
                "embedded PostgreSQL stopped"
            );
        }
        result
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        let Some(postmaster) = self.postmaster.take() else {
            return;
        };
        if postmaster.signal(Signal::SIGINT) && !postmaster.wait_exit_blocking(DROP_TIMEOUT) {
            postmaster.signal(Signal::SIGQUIT);
            postmaster.wait_exit_blocking(Duration::from_secs(2));
        }
        if postmaster.exit_status().is_some() {
            self.remove_private_socket_dir();
            tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL stopped (on drop)");
        }
        // The lock is released when `self.lock` is dropped, after the server is gone.
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Creates `dir` if needed and returns its absolute, canonical path.
fn make_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let existed = dir.exists();
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    if !existed {
        // Traversable by the unprivileged server user whatever the umask.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("could not set permissions of {}", dir.display()))?;
    }
    fs::canonicalize(dir).with_context(|| format!("could not resolve {}", dir.display()))
}

/// Exclusive, non-blocking `flock` on dir/creditphone.lock, holding our pid. Nothing else in
/// `dir` is touched if another process (or this one) holds it.
fn acquire_lock(dir: &Path) -> anyhow::Result<Flock<File>> {
    let path = dir.join("creditphone.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("could not open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let mut file: &File = &lock;
            let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id()));
            if let Err(e) = written {
                tracing::warn!(error = %e, "could not write our pid into {}", path.display());
            }
            Ok(lock)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok());
            Err(EmbeddedPgError::AlreadyRunning { dir: dir.to_path_buf(), pid }.into())
        }
        Err((_, e)) => Err(anyhow!("could not lock {}: {e}", path.display())),
    }
}

/// If a postmaster of ours still runs on `pgdata` (an orphan of an earlier run started without
/// die_with_parent), stops it. A stale postmaster.pid (no such live server) is left to
/// PostgreSQL, which copes with it.
fn stop_orphan(pgdata: &Path) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(pgdata.join("postmaster.pid")) else {
        return Ok(());
    };
    let mut lines = text.lines();
    let Some(pid) = lines.next().and_then(|l| l.trim().parse::<i32>().ok()).filter(|p| *p > 0) else {
        return Ok(());
    };
    let pid_data_dir = lines.next().map(str::trim).unwrap_or("");
    if !is_postmaster_of(pid, pgdata, pid_data_dir) {
        return Ok(());
    }
    let pid = Pid::from_raw(pid);
    tracing::warn!(%pid, pgdata = %pgdata.display(), "a PostgreSQL server left running by an earlier run is still up; stopping it");
    let started = Instant::now();
    for (sig, timeout) in [(Signal::SIGINT, STOP_TIMEOUT), (Signal::SIGQUIT, QUIT_TIMEOUT)] {
        let _ = kill(pid, sig);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !process_alive(pid.as_raw()) {
                tracing::info!(%pid, elapsed_ms = started.elapsed().as_millis() as u64, "stopped the left-over PostgreSQL server");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    bail!("a PostgreSQL server left running on {} (pid {pid}) does not stop; stop it by hand (kill -QUIT {pid})", pgdata.display())
}

/// Alive and not a zombie (an orphan reparented to an init that does not reap stays a zombie).
fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|state| state != 'Z' && state != 'X')
        }
        Err(_) => matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM)),
    }
}

/// Whether `pid` is a live postgres server for `pgdata` (the postmaster's working directory is
/// its data directory; when that cannot be read, trust postmaster.pid's data directory line).
fn is_postmaster_of(pid: i32, pgdata: &Path, pid_data_dir: &str) -> bool {
    if pid == std::process::id() as i32 || !process_alive(pid) {
        return false;
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !matches!(comm.trim(), "postgres" | "postmaster") {
        return false;
    }
    let ours = fs::canonicalize(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd == ours,
        Err(_) => Path::new(pid_data_dir) == ours || Path::new(pid_data_dir) == pgdata,
    }
}

/// Runs initdb into dir/pgdata.initdb and renames it to `pgdata` once complete, so an
/// interrupted initdb never leaves something that looks like a cluster.
fn run_initdb(binaries: &PgBinaries, run_as: &RunAs, dir: &Path, pgdata: &Path, log: &File, opts: &ClusterOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let staging = dir.join("pgdata.initdb");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("could not remove {}", staging.display()))?;
    }
    fs::DirBuilder::new().mode(0o700).create(&staging).with_context(|| format!("could not create {}", staging.display()))?;
    run_as.chown(&staging)?;
    tracing::info!(pgdata = %pgdata.display(), os_user = %run_as.name, "creating a PostgreSQL {} cluster (initdb)", binaries.version);

    let mut cmd = run_as.command(binaries.initdb(), ChildOpts { new_session: false, die_with_parent: opts.die_with_parent });
    // Trust authentication is fine here: the server listens on no TCP address, only on a unix
    // socket in a directory of mode 0700 owned by the server's OS user, so only that user and
    // root (us, when started as root) can connect at all.
    cmd.arg("-D").arg(&staging).args(["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", SUPERUSER]);
    if opts.wants_no_sync() {
        cmd.arg("--no-sync");
    }
    cmd.stdout(log.try_clone().context("could not duplicate the log file")?)
        .stderr(log.try_clone().context("could not duplicate the log file")?);
    let log_path = dir.join("postgres.log");
    let status = cmd.status().with_context(|| format!("could not run {}", binaries.initdb().display()))?;
    if !status.success() {
        bail!("initdb failed ({status}); end of {}:\n{}", log_path.display(), log_tail(&log_path));
    }
    fs::rename(&staging, pgdata).with_context(|| format!("could not rename {} to {}", staging.display(), pgdata.display()))?;
    tracing::info!(
        pgdata = %pgdata.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "initdb done"
    );
    Ok(())
}

/// dir/run, or /tmp/cp-<hash of dir> if a socket in dir/run would exceed the unix socket path
/// limit. Deterministic per dir.
fn socket_dir_for(dir: &Path, port: u16) -> PathBuf {
    let preferred = dir.join("run");
    let socket_len = preferred.as_os_str().len() + format!("/.s.PGSQL.{port}").len();
    if socket_len <= SOCKET_PATH_MAX { preferred } else { PathBuf::from(format!("/tmp/cp-{:016x}", fnv1a(dir.as_os_str().as_bytes()))) }
}

/// Creates the socket directory (mode 0700, owned by the server's user). An existing one must be
/// a real directory and, outside `dir`, already belong to that user or to us (so nobody can
/// plant a directory in /tmp to intercept connections).
fn prepare_socket_dir(path: &Path, dir: &Path, run_as: &RunAs) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_dir() {
                bail!("{} should be a directory for PostgreSQL's socket; remove it", path.display());
            }
            let owner = Uid::from_raw(meta.uid());
            if !path.starts_with(dir) && owner != run_as.uid && owner != nix::unistd::geteuid() {
                bail!("{} (PostgreSQL's socket directory) belongs to another user (uid {owner}); remove it", path.display());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().mode(0o700).create(path).with_context(|| format!("could not create {}", path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("could not inspect {}", path.display())),
    }
    run_as.chown(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("could not set permissions of {}", path.display()))?;
    Ok(())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` if `keep_slash`).
fn percent_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last lines of the log file (reads at most its last 64 KiB).
fn log_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(io::SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => last_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        assert_eq!(major_of("15.18").as_deref(), Some("15"));
        assert_eq!(major_of("16beta1").as_deref(), Some("16"));
        assert_eq!(major_of("9.6.24").as_deref(), Some("9.6"));
        assert!(version_key("16") > version_key("9.6"));
        assert!(version_key("15") > version_key("9.6"));
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode(b"/tmp/a b", true), "/tmp/a%20b");
        assert_eq!(percent_encode(b"a/b@c", false), "a%2Fb%40c");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn short_socket_dirs() {
        let short = Path::new("/srv/creditphone/var");
        assert_eq!(socket_dir_for(short, 5432), short.join("run"));
        let long = PathBuf::from(format!("/srv/{}", "x".repeat(100)));
        let chosen = socket_dir_for(&long, 5432);
        assert!(chosen.starts_with("/tmp"));
        assert_eq!(chosen, socket_dir_for(&long, 5432));
        assert!(chosen.as_os_str().len() + "/.s.PGSQL.5432".len() <= SOCKET_PATH_MAX);
    }
}
