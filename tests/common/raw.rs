//! HTTP/1.1 on a raw socket, for tests whose point is the framing itself (a chunked body left
//! open, a body shorter than its Content-Length, a malformed head): no client library stands
//! between what the test writes and what the service reads.

use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The head (status line and headers) as the service wrote it.
    pub head: String,
    pub body: Value,
}

impl RawAnswer {
    /// A header's value; names compare case-insensitively (RFC 9110 §5.1).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix(&prefix).map(|v| v.trim().to_string()))
    }
}

/// Opens a connection to the service at `url` and writes `bytes` as they are.
pub async fn send(url: &str, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// Reads one answer (head and a body of its Content-Length) without waiting for the server to
/// close, failing after `wait`.
pub async fn read_answer(s: &mut TcpStream, wait: Duration) -> RawAnswer {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(answer) = complete_answer(&buf) {
            return answer;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("connection closed before a complete answer: {:?}", String::from_utf8_lossy(&buf)),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("read failed ({e}) after: {:?}", String::from_utf8_lossy(&buf)),
            Err(_) => panic!("no answer within {wait:?}; read so far: {:?}", String::from_utf8_lossy(&buf)),
        }
    }
}

/// The answer in `buf` once its head and its Content-Length of body have arrived.
fn complete_answer(buf: &[u8]) -> Option<RawAnswer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().expect("a length")))
        .unwrap_or(0);
    if buf.len() < end + 4 + len {
        return None;
    }
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(RawAnswer { status, head, body })
}
