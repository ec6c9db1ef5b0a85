//! A headless Chromium driven through WebDriver (chromedriver) for the console's browser tests.
//! Like the PostgreSQL of these tests, Debian's `chromium` and `chromium-driver` are installed
//! with apt-get when missing and the tests run as root; otherwise the test says how in one line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const DRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
const INSTALL_HINT: &str = "sudo apt-get install -y chromium chromium-driver fonts-wqy-microhei";
/// A CJK font, so that the screenshots of the zh-CN console are legible (not needed to pass).
const CJK_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Chromium and its driver, installed first when missing (as root, with apt-get).
pub fn ensure_installed() -> (PathBuf, PathBuf) {
    if let (Some(c), Some(d)) = (first_existing(CHROMIUM), first_existing(DRIVER))
        && std::path::Path::new(CJK_FONT).exists()
    {
        return (c, d);
    }
    if nix::unistd::geteuid().is_root() && std::path::Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "chromium, chromedriver or a CJK font missing; running: apt-get update && apt-get install -y chromium chromium-driver fonts-wqy-microhei"
        );
        let apt = |args: &[&str]| {
            let out = Command::new("/usr/bin/apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(args).output();
            if let Ok(out) = out
                && !out.status.success()
            {
                eprintln!("apt-get {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        };
        apt(&["update"]);
        apt(&["install", "-y", "chromium", "chromium-driver", "fonts-wqy-microhei"]);
    }
    match (first_existing(CHROMIUM), first_existing(DRIVER)) {
        (Some(c), Some(d)) => (c, d),
        _ => panic!("headless Chromium and chromedriver are needed for the console's browser tests; install them with: {INSTALL_HINT}"),
    }
}

/// A browser session; the driver process ends with it.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Headless Chromium at 1366×900 (a laptop screen), its answers in zh-CN.
    pub async fn start() -> Browser {
        let (chromium, driver_bin) = ensure_installed();
        // Two crypto providers are compiled in (see Cargo.toml); rustls wants one chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::Builder::new().prefix("cp-chromium-").tempdir_in("/tmp").unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--window-size=1366,900".to_string(),
            "--lang=zh-CN".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": args, "prefs": {"intl.accept_languages": "zh-CN,zh"}}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let connected = fantoccini::ClientBuilder::rustls().expect("TLS roots").capabilities(caps.clone()).connect(&url).await;
            match connected {
                Ok(client) => return Browser { client, driver, _profile: profile },
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot start a WebDriver session on chromedriver: {last:?}");
    }

    /// Writes a screenshot of the page to `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
