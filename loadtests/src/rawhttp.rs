//! A minimal HTTP/1.1 keep-alive client for open-loop load: requests are
//! pre-formatted bytes and responses are read by Content-Length, so the load
//! generator costs about as little CPU as wrk and does not crowd out the
//! server it measures on a 2-core machine.
//!
//! Each connection (lane) is a blocking socket on its own OS thread that
//! sleeps with `std::thread::sleep` until each request's scheduled time. An
//! async runtime's timer would not do: tokio's ticks in whole milliseconds,
//! so every request would go out up to a millisecond late, and that lateness,
//! counted from the scheduled time, would swamp a tail of a few milliseconds.
//! A thread's sleep wakes within the kernel's timer slack (about 50 µs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Reads one response; returns its status code.
fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
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
                let n = conn.read(&mut chunk)?;
                if n == 0 {
                    bail!("connection closed mid-body");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let conn = TcpStream::connect(addr).with_context(|| format!("could not connect to {addr}"))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Sends `rate` GET requests per second for `seconds` over `lanes` keep-alive
/// connections to `addr`, each at its scheduled time, and measures latency from
/// that time, so a slow response delays (and is charged to) the ones behind it.
/// Returns the sorted latencies of 2xx answers and the count of others.
pub fn open_loop(
    addr: &str,
    paths: &[String],
    token: &str,
    rate: f64,
    seconds: u32,
    lanes: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let total = (rate * f64::from(seconds)) as usize;
    let interval = Duration::from_secs_f64(lanes as f64 / rate);
    let requests: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes())
        .collect();
    let start = Instant::now() + Duration::from_millis(200);
    let lane = |lane: usize| -> anyhow::Result<(Vec<Duration>, usize)> {
        let mut conn = connect(addr)?;
        let mut buf = Vec::with_capacity(8192);
        let (mut latencies, mut failed) = (Vec::with_capacity(total / lanes + 1), 0usize);
        let offset = interval.mul_f64(lane as f64 / lanes as f64);
        for k in 0.. {
            let i = k * lanes + lane;
            if i >= total {
                break;
            }
            let due = start + offset + interval * k as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let request = &requests[i % requests.len()];
            let sent =
                conn.write_all(request).map_err(anyhow::Error::from).and_then(|()| read_response(&mut conn, &mut buf));
            // A server may close a keep-alive connection after some requests: reconnect and resend once.
            let status = match sent {
                Ok(status) => status,
                Err(_) => {
                    conn = connect(addr)?;
                    conn.write_all(request)?;
                    read_response(&mut conn, &mut buf)?
                }
            };
            match status {
                200..=299 => latencies.push(due.elapsed()),
                _ => failed += 1,
            }
        }
        Ok((latencies, failed))
    };
    let lane = &lane;
    let per_lane: Vec<anyhow::Result<(Vec<Duration>, usize)>> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..lanes).map(|i| scope.spawn(move || lane(i))).collect();
        running.into_iter().map(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a lane panicked")))).collect()
    });
    let (mut all, mut failed) = (Vec::with_capacity(total), 0);
    for result in per_lane {
        let (latencies, f) = result?;
        all.extend(latencies);
        failed += f;
    }
    all.sort();
    Ok((all, failed))
}
