//! The public conformance smoke check (../shared/conformance/smoke.py) against the real binary
//! on its embedded default database, started the way the README says.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_public_smoke_check_passes_against_the_embedded_default() {
    let dir = tempfile::Builder::new().prefix("cp-smoke-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let port = free_port();
    let manifest = env!("CARGO_MANIFEST_DIR");
    let server = Command::new(env!("CARGO_BIN_EXE_creditphone"))
        .args(["--config-dir", &format!("{manifest}/config"), "serve"])
        .env("CREDITPHONE__DATABASE__DATA_DIR", dir.path().join("var"))
        .env("CREDITPHONE__SERVER__PORT", port.to_string())
        .env("CREDITPHONE__AUTH__ADMIN_KEY", "smoke-admin-key")
        .env("CREDITPHONE__NOTICES__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.path().join("serve.log")).unwrap()))
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let started = Instant::now();
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
        });
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the service did not become ready: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new("python3")
        .arg(format!("{manifest}/../shared/conformance/smoke.py"))
        .args(["--url", &format!("http://127.0.0.1:{port}"), "--admin-key", "smoke-admin-key"])
        .output()
        .expect("python3 runs the smoke check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "smoke check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
