//! The benchmark harness (bench/, `bench/run`) in its short smoke mode, so it never rots: it must
//! run every phase end to end and print a parseable `BENCH {json}` line with every key.

mod common;

use common::readme::{code_blocks, command_line, readme, readme_shell};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The keys issues 6, 17, 18, 19 and 20 fix, restated here rather than taken from the harness this
/// test checks.
const KEYS: [&str; 25] = [
    "pgbench_tps",
    "orders_per_s",
    "ratio",
    "p50_ms",
    "p99_ms",
    "open_loop_p99_ms",
    "hot_bank_ratio",
    "eod_1m_due_s",
    "eod_nothing_due_s",
    "notices_per_s",
    "rss_mb",
    "instances_1_orders_per_s",
    "instances_2_orders_per_s",
    "instances_3_orders_per_s",
    "eod_write_off_1m_s",
    "reports_store_100k_s",
    "report_read_closed_ms",
    "aging_ms",
    "portfolio_ms",
    "console_aging_ms",
    "console_overview_ms",
    "orders_per_s_required_mode",
    "ratio_required_mode",
    "cpu_ms_per_order",
    "cpu_ms_per_order_required_mode",
];
/// The smoke run itself takes about a minute; a clean clone first builds the release binaries.
const LIMIT: Duration = Duration::from_secs(40 * 60);

#[test]
fn the_benchmark_harness_runs_in_smoke_mode() {
    let out = std::env::temp_dir().join(format!("cp-bench-smoke-{}.md", std::process::id()));
    // The README's own line (it builds the release binaries first), with `--out` so that the report
    // lands in a file this test reads.
    let line = command_line(&code_blocks(&readme(), "Benchmarks")[0], "--smoke");
    let mut child = readme_shell(&format!("{line} --out {}", out.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bench binary starts");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the bench") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the smoke bench did not finish within {} s:\n{}", LIMIT.as_secs(), reader.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    println!("{stdout}");
    assert!(status.success(), "the smoke bench failed ({status}):\n{stdout}\n{stderr}");

    let line = stdout.lines().last().unwrap_or_default();
    let json = line.strip_prefix("BENCH ").unwrap_or_else(|| panic!("the last line is not `BENCH {{json}}`: {line:?}"));
    let bench: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("BENCH line is not JSON ({e}): {json}"));
    for key in KEYS {
        let value = bench.get(key).and_then(serde_json::Value::as_f64).unwrap_or_else(|| panic!("BENCH has no number `{key}`: {json}"));
        if key == "eod_nothing_due_s" {
            assert!(value >= 0.0, "{key} = {value}");
        } else {
            assert!(value > 0.0, "{key} should be positive: {json}");
        }
    }
    assert_eq!(bench.as_object().map(|o| o.len()), Some(KEYS.len()), "exactly the documented keys: {json}");

    let md = std::fs::read_to_string(&out).expect("the markdown report was written to --out");
    let _ = std::fs::remove_file(&out);
    assert!(md.starts_with("# Benchmarks") && md.contains(&format!("BENCH {json}")), "{md}");
    assert!(md.contains("### 1, 2 and 3 service instances on one database"), "the several-instances section: {md}");
}
