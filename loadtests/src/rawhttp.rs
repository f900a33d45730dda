//! A minimal HTTP/1.1 keep-alive client for open-loop load: requests are
//! pre-formatted bytes and responses are read by Content-Length, so the load
//! generator costs about as little CPU as wrk and does not crowd out the
//! server it measures on a 2-core machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response; returns its status code.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
            let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).context("no status code")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok()).flatten()
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed mid-body");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `rate` GET requests per second for `seconds` over `lanes` keep-alive
/// connections to `addr`, each at its scheduled time, and measures latency from
/// that time, so a slow response delays (and is charged to) the ones behind it.
/// Returns the sorted latencies of 2xx answers and the count of others.
pub async fn open_loop(
    addr: &str,
    paths: &[String],
    token: &str,
    rate: f64,
    seconds: u32,
    lanes: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let total = (rate * f64::from(seconds)) as usize;
    let interval = Duration::from_secs_f64(lanes as f64 / rate);
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        paths
            .iter()
            .map(|p| format!("GET {p} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes())
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let (addr, requests) = (addr.to_owned(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(&addr).await?;
            conn.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(8192);
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            let offset = interval.mul_f64(lane as f64 / lanes as f64);
            for k in 0.. {
                let i = k * lanes + lane;
                if i >= total {
                    break;
                }
                let due = start + offset + interval * k as u32;
                tokio::time::sleep_until(due.into()).await;
                let request = &requests[i % requests.len()];
                let sent = async {
                    conn.write_all(request).await?;
                    read_response(&mut conn, &mut buf).await
                }
                .await;
                // A server may close a keep-alive connection after some requests: reconnect and resend once.
                let status = match sent {
                    Ok(status) => status,
                    Err(_) => {
                        conn = TcpStream::connect(&addr).await?;
                        conn.set_nodelay(true)?;
                        conn.write_all(request).await?;
                        read_response(&mut conn, &mut buf).await?
                    }
                };
                match status {
                    200..=299 => latencies.push(due.elapsed()),
                    _ => failed += 1,
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let (mut all, mut failed) = (Vec::with_capacity(total), 0);
    for t in tasks {
        let (l, f) = t.await??;
        all.extend(l);
        failed += f;
    }
    all.sort();
    Ok((all, failed))
}
