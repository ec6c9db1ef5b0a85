//! The README's own code blocks, and its commands run as a user's shell would run them.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn readme() -> String {
    std::fs::read_to_string(manifest_dir().join("README.md")).expect("README.md is readable")
}

/// The contents of every fenced code block of the section under `heading` (a `## ` line).
pub fn code_blocks(readme: &str, heading: &str) -> Vec<String> {
    let section = readme.split("\n## ").find(|s| s.starts_with(heading)).unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.starts_with("```")) {
            (None, true) => current = Some(String::new()),
            (Some(block), true) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, false) => {}
        }
    }
    assert!(!blocks.is_empty(), "README section {heading:?} has no code block");
    blocks
}

/// The command of the block's line containing `needle`, without its trailing `# comment`.
pub fn command_line(block: &str, needle: &str) -> String {
    let line = block.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{block}"));
    match line.find("   #").or_else(|| line.find("  #")) {
        Some(i) => line[..i].trim().to_string(),
        None => line.trim().to_string(),
    }
}

/// A README command in bash (which `exec`s a single command, so the child is the command itself),
/// in the repository. The outer cargo's variables are removed so that an inner cargo sees what a
/// user's shell would.
pub fn readme_shell(line: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(line).current_dir(manifest_dir()).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" || key == "RUST_TEST_THREADS" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A README command of the service on the test's own port and `var/` (and the walkthrough's URL).
pub fn readme_command(line: &str, port: u16, var: &Path) -> Command {
    let mut cmd = readme_shell(line);
    cmd.env("CREDITPHONE__SERVER__PORT", port.to_string())
        .env("CREDITPHONE__DATABASE__DATA_DIR", var)
        .env("CREDITPHONE_URL", format!("http://127.0.0.1:{port}"));
    cmd
}
