//! The README's commands, run as the README writes them (read from its own code blocks, never
//! restated here): the run command on its embedded default database, the walkthrough script against
//! it, then `migrate`, `eod` and `verify` on the same `var/`. A new user's first minutes are what
//! these lines are; nothing else in CI would notice them rot.
//!
//! The first run builds the release binary (`cargo run --release`), which takes minutes on a clean
//! clone: the waits below are generous and end early whenever the command itself ends.

mod common;

use common::binary::free_port;
use common::readme::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A release build of the whole dependency tree on a 2-core machine, with room to spare.
const BUILD_AND_START_LIMIT: Duration = Duration::from_secs(40 * 60);
const COMMAND_LIMIT: Duration = Duration::from_secs(20 * 60);
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// Runs a README command to its end (bounded), returning what it printed.
fn run_to_end(mut cmd: Command, what: &str) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_LIMIT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            panic!("{what} did not finish within {} s", COMMAND_LIMIT.as_secs());
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The server started by the README's line; stopped by SIGTERM (as a user's Ctrl-C or service
/// manager would), and killed with its process group if the test fails before that.
struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn start(line: &str, port: u16, var: &Path, log: PathBuf) -> Server {
        use std::os::unix::process::CommandExt;
        let child = readme_command(line, port, var)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("bash starts the README's run command");
        Server { child: Some(child), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, port: u16) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("poll the server")) {
                panic!("the README's run command ended ({status}) before it was ready:\n{}", self.log());
            }
            if readyz(port) {
                return;
            }
            assert!(started.elapsed() < BUILD_AND_START_LIMIT, "not ready within {} s:\n{}", BUILD_AND_START_LIMIT.as_secs(), self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM, then the exit status: a clean stop exits 0 and stops its PostgreSQL.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the server");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                return status;
            }
            if started.elapsed() > STOP_LIMIT {
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                panic!("the server did not stop within {} s of SIGTERM:\n{}", STOP_LIMIT.as_secs(), self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

fn readyz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// No process of the stopped service or its PostgreSQL is left holding the data directory.
fn assert_cluster_stopped(var: &Path) {
    let pid_file = var.join("pgdata/postmaster.pid");
    assert!(!pid_file.exists(), "PostgreSQL was not stopped: {} remains", pid_file.display());
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = readme();
    let walkthrough = code_blocks(&readme, "A walk through the API");
    let serve_line = command_line(&walkthrough[0], "-- serve");
    let script_line = command_line(&walkthrough[0], "walkthrough.sh");
    let script = std::fs::read_to_string(manifest_dir().join("docs/examples/walkthrough.sh")).expect("the walkthrough script");
    assert!(walkthrough.iter().any(|b| *b == script), "the README shows docs/examples/walkthrough.sh as it is");
    let other = code_blocks(&readme, "The two commands");
    let run_line = command_line(&other[0], "-- serve");
    assert!(serve_line.ends_with(&run_line), "the walkthrough starts the service as the two commands do: {serve_line:?} / {run_line:?}");
    let (migrate, eod, verify) =
        (command_line(&other[1], "-- migrate"), command_line(&other[1], "-- eod"), command_line(&other[1], "-- verify"));

    let tmp = tempfile::Builder::new().prefix("cp-readme-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let var = tmp.path().join("var");
    let port = free_port();

    let mut server = Server::start(&serve_line, port, &var, tmp.path().join("serve.log"));
    server.wait_ready(port);
    let walk = run_to_end(readme_command(&script_line, port, &var), "the walkthrough");
    assert!(walk.status.success(), "the walkthrough failed ({}):\n{}\nserver log:\n{}", walk.status, text(&walk.stderr), server.log());
    assert!(text(&walk.stderr).contains("settled") && text(&walk.stderr).contains("ledger ok"), "{}", text(&walk.stderr));
    // It runs again on the same database: set-up kept, unique numbers tagged by the run.
    std::thread::sleep(Duration::from_millis(1100));
    let again = run_to_end(readme_command(&script_line, port, &var), "the walkthrough, again");
    assert!(again.status.success(), "the walkthrough failed on its second run:\n{}", text(&again.stderr));
    let status = server.stop();
    assert!(status.success(), "the server did not stop cleanly on SIGTERM ({status}):\n{}", server.log());
    assert_cluster_stopped(&var);

    // The other commands, on the same embedded database once the server has let go of it.
    for (line, expect) in [(&migrate, "migrations applied"), (&eod, "business_date"), (&verify, "\"ok\":true")] {
        let out = run_to_end(readme_command(line, port, &var), line);
        let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "`{line}` failed ({}):\n{printed}", out.status);
        assert!(printed.replace(": ", ":").contains(expect), "`{line}` printed no {expect:?}:\n{printed}");
        assert_cluster_stopped(&var);
    }
}
