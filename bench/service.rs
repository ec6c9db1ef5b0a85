//! The service under test: the `creditphone serve` binary as a child process on a free loopback
//! port, configured only through its environment.

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Service {
    child: Option<Child>,
    pub pid: u32,
    pub url: String,
    pub admin_key: String,
    log_path: PathBuf,
}

impl Service {
    /// One instance: `name` names its log (`<name>.log`) and data directory (`<name>-var`) in
    /// `workdir`; `pool_size` is its database pool.
    pub async fn start(bin: &Path, database_url: &str, workdir: &Path, name: &str, pool_size: usize) -> Result<Service> {
        let port = free_port()?;
        let admin_key = format!("bench-admin-{}", uuid::Uuid::new_v4().simple());
        let log_path = workdir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("could not create {}", log_path.display()))?;
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut cmd = Command::new(bin);
        cmd.arg("--config-dir").arg(&config_dir).arg("serve").current_dir(workdir);
        // Only what is set here configures it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CREDITPHONE") {
                cmd.env_remove(&key);
            }
        }
        let envs: Vec<(&str, String)> = vec![
            ("CREDITPHONE__DATABASE__URL", database_url.to_string()),
            ("CREDITPHONE__DATABASE__DATA_DIR", workdir.join(format!("{name}-var")).display().to_string()),
            ("CREDITPHONE__DATABASE__POOL_SIZE", pool_size.to_string()),
            ("CREDITPHONE__SERVER__HOST", "127.0.0.1".into()),
            ("CREDITPHONE__SERVER__PORT", port.to_string()),
            ("CREDITPHONE__AUTH__ADMIN_KEY", admin_key.clone()),
            // The load generator is the only caller: no key should be throttled.
            ("CREDITPHONE__AUTH__DEFAULT_RATE_LIMIT_PER_MINUTE", "1000000000".into()),
            ("CREDITPHONE__PII__HASH_KEY", "3a".repeat(32)),
            ("CREDITPHONE__PII__ENCRYPTION_KEY", "5c".repeat(32)),
            ("CREDITPHONE__LOG__LEVEL", "warn".into()),
            ("CREDITPHONE__EOD__ENABLED", "false".into()),
            ("CREDITPHONE__NOTICES__ENABLED", "true".into()),
        ];
        let extra = EXTRA_ENV.get().map(Vec::as_slice).unwrap_or_default();
        cmd.envs(envs).envs(extra.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log));
        let parent = nix::unistd::getpid();
        // SAFETY: runs in the forked child before exec; only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || {
                // The service dies with us (SIGTERM) even if we are killed.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
        let pid = child.id();
        let mut service = Service { child: Some(child), pid, url: format!("http://127.0.0.1:{port}"), admin_key, log_path };
        println!("\n== {name}: {} serve (pid {pid}, pool {pool_size}) on {}", bin.display(), service.url);
        service.wait_ready().await?;
        Ok(service)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().context("HTTP client")?;
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("waiting for the service")?
            {
                bail!("the service exited during start-up ({status}); end of its log:\n{}", self.log_tail(25));
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                println!("   ready in {:.1} s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("the service was not ready within {} s; end of its log:\n{}", READY_TIMEOUT.as_secs(), self.log_tail(25));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The order batcher's counters from `/metrics` (issue 20): subtract two to describe a phase.
    pub async fn batch_counters(&self) -> Result<BatchCounters> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().context("HTTP client")?;
        let text = http.get(format!("{}/metrics", self.url)).send().await?.error_for_status()?.text().await?;
        Ok(BatchCounters::parse(&text))
    }

    /// Peak resident set size so far (`VmHWM`), in MiB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()?;
        Some(kb / 1024.0)
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it is still there after 30 s.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().context("waiting for the service")? {
                if !status.success() {
                    eprintln!("creditphone-bench: the service exited with {status}; end of its log:\n{}", self.log_tail(10));
                }
                return Ok(());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the service did not stop within {} s of SIGTERM; killed it", STOP_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("could not find a free loopback port")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// `--service-env`: set in every service's environment after the harness's own settings.
pub static EXTRA_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sums and counts of the order batcher's histograms (`creditphone_order_batch_*`).
#[derive(Debug, Clone, Default)]
pub struct BatchCounters {
    pub batches: f64,
    pub orders: f64,
    pub queued_secs: f64,
    pub queued_orders: f64,
    pub placed_secs: f64,
    /// The steps within a batch (`stage` other than `queued` and `placed`): seconds and count.
    pub steps: std::collections::BTreeMap<String, (f64, f64)>,
}

impl BatchCounters {
    fn parse(text: &str) -> BatchCounters {
        let mut c = BatchCounters::default();
        for line in text.lines().filter(|l| l.starts_with("creditphone_order_batch_")) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(v) = value.parse::<f64>() else { continue };
            match name {
                "creditphone_order_batch_orders_count" => c.batches = v,
                "creditphone_order_batch_orders_sum" => c.orders = v,
                "creditphone_order_batch_stage_seconds_sum{stage=\"queued\"}" => c.queued_secs = v,
                "creditphone_order_batch_stage_seconds_count{stage=\"queued\"}" => c.queued_orders = v,
                "creditphone_order_batch_stage_seconds_sum{stage=\"placed\"}" => c.placed_secs = v,
                _ => {
                    let step = |prefix: &str| name.strip_prefix(prefix).and_then(|r| r.strip_suffix("\"}")).map(str::to_string);
                    if let Some(stage) = step("creditphone_order_batch_stage_seconds_sum{stage=\"") {
                        c.steps.entry(stage).or_default().0 = v;
                    } else if let Some(stage) = step("creditphone_order_batch_stage_seconds_count{stage=\"") {
                        c.steps.entry(stage).or_default().1 = v;
                    }
                }
            }
        }
        c
    }

    /// What happened between `before` and this; `None` when no order was batched.
    pub fn since(&self, before: &BatchCounters) -> Option<BatchDelta> {
        let (batches, orders) = (self.batches - before.batches, self.orders - before.orders);
        let queued = self.queued_orders - before.queued_orders;
        if batches < 1.0 || queued < 1.0 {
            return None;
        }
        let steps = self
            .steps
            .iter()
            .filter_map(|(stage, (secs, n))| {
                let (secs0, n0) = before.steps.get(stage).copied().unwrap_or_default();
                let n = n - n0;
                (n >= 1.0).then(|| (stage.clone(), (secs - secs0) / n * 1e3, n))
            })
            .collect();
        Some(BatchDelta {
            orders,
            batches,
            queued_ms: (self.queued_secs - before.queued_secs) / queued * 1e3,
            placed_ms: (self.placed_secs - before.placed_secs) / queued * 1e3,
            steps,
        })
    }
}

/// The order batcher over one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchDelta {
    pub orders: f64,
    pub batches: f64,
    /// An order's mean wait for its batch to start, and its batch's mean transaction, in ms.
    pub queued_ms: f64,
    pub placed_ms: f64,
    /// Each step of a batch (`connection`, `read`, ..., `commit`; `alone_*` for a batch of one,
    /// the single path): its mean ms and how many times it was timed.
    pub steps: Vec<(String, f64, f64)>,
}

impl BatchDelta {
    pub fn per_batch(&self) -> f64 {
        self.orders / self.batches.max(1.0)
    }

    pub fn line(&self) -> String {
        format!(
            "{:.0} orders in {:.0} batches ({:.1} per batch); an order waited {:.2} ms on average for its batch to start and {:.2} ms in it",
            self.orders,
            self.batches,
            self.per_batch(),
            self.queued_ms,
            self.placed_ms
        )
    }

    /// Each step's mean ms (`None` when the service times none).
    pub fn steps_line(&self) -> Option<String> {
        let parts: Vec<String> = self.steps.iter().map(|(stage, ms, n)| format!("{stage} {ms:.2} ms (×{n:.0})")).collect();
        (!parts.is_empty()).then(|| format!("the steps of a batch, mean ms: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::BatchCounters;

    #[test]
    fn batch_counters_read_from_the_metrics_text() {
        let at = |batches: u32, orders: u32, queued: f64, placed: f64| {
            BatchCounters::parse(&format!(
                "# TYPE creditphone_order_batch_orders histogram\ncreditphone_order_batch_orders_bucket{{le=\"1\"}} 3\n\
                 creditphone_order_batch_orders_sum {orders}\ncreditphone_order_batch_orders_count {batches}\n\
                 creditphone_order_batch_stage_seconds_sum{{stage=\"placed\"}} {placed}\n\
                 creditphone_order_batch_stage_seconds_count{{stage=\"placed\"}} {orders}\n\
                 creditphone_order_batch_stage_seconds_sum{{stage=\"queued\"}} {queued}\n\
                 creditphone_order_batch_stage_seconds_count{{stage=\"queued\"}} {orders}\n"
            ))
        };
        let (before, after) = (at(2, 10, 0.010, 0.050), at(12, 110, 0.110, 0.550));
        assert_eq!(
            after.since(&before).map(|d| d.line()).as_deref(),
            Some("100 orders in 10 batches (10.0 per batch); an order waited 1.00 ms on average for its batch to start and 5.00 ms in it")
        );
        assert_eq!(after.since(&after), None, "nothing batched between two equal readings");
    }
}
