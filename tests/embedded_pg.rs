//! Embedded PostgreSQL against the machine's real server binaries.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use creditphone::pg::embedded::*;

const CHILD_ENV: &str = "CP_PG_TEST_CHILD_DIR";
const CHILD_DIE_ENV: &str = "CP_PG_TEST_CHILD_DIE_WITH_PARENT";

fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

/// A tempdir under /tmp, traversable by the unprivileged server user (mode 0755).
fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("cp-").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn options(dir: &Path) -> ClusterOptions {
    ClusterOptions {
        dir: dir.to_path_buf(),
        db_name: "cptest".to_string(),
        extra_settings: ClusterOptions::fast_unsafe_settings(),
        die_with_parent: true,
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn select_one(cluster: &EmbeddedCluster) -> i32 {
    let client = connect(&cluster.pg_config("cptest")).await.expect("connect");
    client.query_one("SELECT 1", &[]).await.expect("select").get(0)
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

fn proc_uid(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}")).expect("proc").uid()
}

#[tokio::test]
async fn start_query_lock_stop_and_restart() {
    init_tracing();
    let tmp = tempdir();
    let dir = tmp.path().join("var");

    let mut cluster = EmbeddedCluster::start(options(&dir)).await.expect("start");
    assert!(cluster.created());
    assert_eq!(select_one(&cluster).await, 1);

    // The URL works too (tokio-postgres parses libpq URLs).
    let url = cluster.url("cptest");
    assert!(url.starts_with("postgresql://postgres@/cptest?host=/"), "{url}");
    let from_url: tokio_postgres::Config = url.parse().expect("parse url");
    let client = connect(&from_url).await.expect("connect via url");
    client.batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')").await.expect("create table");

    // Runs as a non-root user when we are root; unix socket only.
    let pid = cluster.pid().expect("pid");
    let data_dir: String = client.query_one("SELECT current_setting('data_directory')", &[]).await.expect("data_directory").get(0);
    assert_eq!(Path::new(&data_dir), dir.canonicalize().unwrap().join("pgdata"));
    let listen: String = client.query_one("SHOW listen_addresses", &[]).await.expect("listen").get(0);
    assert_eq!(listen, "");
    if nix::unistd::geteuid().is_root() {
        assert_ne!(proc_uid(pid), 0, "postmaster runs as root");
        assert_ne!(std::fs::metadata(&data_dir).unwrap().uid(), 0);
        assert_ne!(cluster.os_user(), "root");
    }
    drop(client);

    let pg_version = dir.join("pgdata/PG_VERSION");
    let before = std::fs::metadata(&pg_version).expect("PG_VERSION");

    // A second start on the same dir fails clearly and leaves the first alone.
    let err = EmbeddedCluster::start(options(&dir)).await.expect_err("second start must fail");
    let msg = err.to_string();
    assert!(
        msg.starts_with("another creditphone is already running on ") && msg.contains(&format!("(pid {})", std::process::id())),
        "{msg}"
    );
    assert!(matches!(err.downcast_ref::<EmbeddedPgError>(), Some(EmbeddedPgError::AlreadyRunning { .. })));
    assert_eq!(select_one(&cluster).await, 1);
    assert_eq!(cluster.pid(), Some(pid));

    // Stop is idempotent; afterwards the socket no longer accepts connections.
    let config = cluster.pg_config("cptest");
    cluster.stop().await.expect("stop");
    cluster.stop().await.expect("second stop");
    assert!(cluster.pid().is_none());
    assert!(!alive(pid));
    assert!(connect(&config).await.is_err());
    drop(cluster);

    // Restart reuses the data; no second initdb.
    let mut again = EmbeddedCluster::start(options(&dir)).await.expect("restart");
    assert!(!again.created());
    let after = std::fs::metadata(&pg_version).expect("PG_VERSION");
    assert_eq!((before.ino(), before.mtime_nsec()), (after.ino(), after.mtime_nsec()));
    let client = connect(&again.pg_config("cptest")).await.expect("connect");
    let v: String = client.query_one("SELECT v FROM kept", &[]).await.expect("kept").get(0);
    assert_eq!(v, "still here");
    drop(client);
    again.stop().await.expect("stop");
}

/// A long directory (socket path over the unix limit) holding a half-finished initdb.
#[tokio::test]
async fn long_dir_and_half_finished_initdb() {
    init_tracing();
    let tmp = tempdir();
    let dir = tmp.path().join("d".repeat(60)).join("e".repeat(40));
    std::fs::create_dir_all(dir.join("pgdata")).expect("mkdir");
    std::fs::write(dir.join("pgdata/junk"), "left by an interrupted initdb").expect("junk");
    for ancestor in [dir.parent().unwrap(), &dir] {
        std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut cluster = EmbeddedCluster::start(options(&dir)).await.expect("start");
    assert!(cluster.created());
    assert!(!dir.join("pgdata/junk").exists());
    assert!(cluster.socket_dir().to_string_lossy().starts_with("/tmp/cp-"), "{:?}", cluster.socket_dir());
    let recorded = std::fs::read_to_string(dir.join("socket-dir")).expect("socket-dir");
    assert_eq!(Path::new(recorded.trim()), cluster.socket_dir());
    assert_eq!(select_one(&cluster).await, 1);
    let socket_dir = cluster.socket_dir().to_path_buf();
    cluster.stop().await.expect("stop");
    assert!(!socket_dir.exists(), "the short socket dir is removed on stop");
}

/// As root, a directory the unprivileged server user cannot reach is refused up front.
#[tokio::test]
async fn unreachable_dir_is_refused_when_root() {
    init_tracing();
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("cp-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = tmp.path().join("var");
    let err = EmbeddedCluster::start(options(&dir)).await.expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("cannot reach") && msg.contains(&*dir.to_string_lossy()), "{msg}");
    assert!(!msg.contains('\n'));
    assert!(!dir.join("pgdata").exists());
}

/// Run only as a child of `killed_owner_leaves_no_postmaster`: starts a cluster with
/// die_with_parent, reports the postmaster's pid, and waits to be killed.
#[tokio::test]
async fn child_owner_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    init_tracing();
    let dir = PathBuf::from(dir);
    let mut opts = options(&dir);
    opts.die_with_parent = std::env::var(CHILD_DIE_ENV).as_deref() != Ok("0");
    let cluster = EmbeddedCluster::start(opts).await.expect("child start");
    let pid = cluster.pid().expect("pid");
    std::fs::write(dir.join("child.tmp"), pid.to_string()).unwrap();
    std::fs::rename(dir.join("child.tmp"), dir.join("child.ready")).unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Runs `child_owner_process` in a child process, waits for its cluster, SIGKILLs the child.
/// Returns the postmaster's pid.
async fn run_and_kill_owner(dir: &Path, die_with_parent: bool) -> u32 {
    let _ = std::fs::remove_file(dir.join("child.ready"));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_owner_process", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_DIE_ENV, if die_with_parent { "1" } else { "0" })
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");

    let deadline = Instant::now() + Duration::from_secs(40);
    let pid: u32 = loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("child.ready")) {
            break text.trim().parse().expect("pid");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        assert!(Instant::now() < deadline, "child did not start a cluster");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(alive(pid));
    child.kill().expect("SIGKILL"); // std's kill() sends SIGKILL
    child.wait().expect("wait");
    pid
}

async fn wait_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what}: postmaster {pid} still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn killed_owner_leaves_no_postmaster() {
    init_tracing();
    let tmp = tempdir();
    let dir = tmp.path().join("var");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    // die_with_parent: the postmaster follows its killed owner.
    let pid = run_and_kill_owner(&dir, true).await;
    wait_gone(pid, "die_with_parent").await;
    let mut cluster = EmbeddedCluster::start(options(&dir)).await.expect("start again");
    assert!(!cluster.created());
    assert_eq!(select_one(&cluster).await, 1);
    cluster.stop().await.expect("stop");

    // Without it the postmaster outlives its owner; the next start stops the orphan first.
    let orphan = run_and_kill_owner(&dir, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(orphan), "orphan postmaster should outlive its owner");
    let mut cluster = EmbeddedCluster::start(options(&dir)).await.expect("start over orphan");
    assert!(!alive(orphan));
    assert_ne!(cluster.pid(), Some(orphan));
    assert_eq!(select_one(&cluster).await, 1);
    cluster.stop().await.expect("stop");
}

/// A server that cannot start gives an error with the end of its log, and releases the dir.
#[tokio::test]
async fn failed_start_reports_log_tail() {
    init_tracing();
    let tmp = tempdir();
    let dir = tmp.path().join("var");
    let mut bad = options(&dir);
    bad.extra_settings.push(("no_such_setting".to_string(), "1".to_string()));
    let err = EmbeddedCluster::start(bad).await.expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("exited during start-up") && msg.contains("no_such_setting"), "{msg}");
    let mut cluster = EmbeddedCluster::start(options(&dir)).await.expect("start");
    assert!(!cluster.created());
    assert_eq!(select_one(&cluster).await, 1);
    cluster.stop().await.expect("stop");
}
