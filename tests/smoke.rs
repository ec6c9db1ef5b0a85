//! The public conformance smoke check (../shared/conformance/smoke.py) against the real binary
//! on its embedded default database, started the way the README says.

mod common;

use common::binary::ServeBinary;
use std::process::Command;
use std::time::Duration;

#[test]
fn the_public_smoke_check_passes_against_the_embedded_default() {
    let dir = tempfile::Builder::new().prefix("cp-smoke-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let manifest = env!("CARGO_MANIFEST_DIR");
    let mut server =
        ServeBinary::new(dir.path()).data_dir(dir.path().join("var")).admin_key("smoke-admin-key").notices_enabled(false).spawn();
    server.wait_ready_blocking(Duration::from_secs(120));
    let out = Command::new("python3")
        .arg(format!("{manifest}/../shared/conformance/smoke.py"))
        .args(["--url", &server.base_url, "--admin-key", "smoke-admin-key"])
        .output()
        .expect("python3 runs the smoke check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "smoke check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
