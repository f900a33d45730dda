//! A minimal HTTP/1.1 keep-alive client for open-loop load: every connection
//! (lane) sends its requests on a fixed schedule, and each latency counts from
//! the request's scheduled time, so a slow answer delays, and is charged to,
//! the requests behind it.
//!
//! On a 2-core machine the load generator shares the cores with the server it
//! measures, so it must cost as little CPU as it can. Two threads each drive
//! their lanes through one epoll set, sleeping in `epoll_pwait2` until the
//! next request is due or an answer arrives: several sends and answers are
//! handled per wake-up, where a thread per lane paid a sleep, a wake and a
//! blocking read for every request (about 30 µs of CPU each at 21 000/s).
//! `epoll_pwait2` takes its timeout in nanoseconds; an async runtime's timer
//! ticks in whole milliseconds, and would send each request up to a
//! millisecond late, which the latency, counted from the scheduled time,
//! would then include.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::event::{Timespec, epoll};

/// Threads that drive the lanes: one per core of the machine measured on.
const THREADS: usize = 2;

/// If `buf` holds a whole response, its status code and length.
fn whole_response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).context("no status code")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0);
    let total = end + 4 + length;
    Ok((buf.len() >= total).then_some((status, total)))
}

/// One keep-alive connection and its schedule.
struct Lane {
    conn: TcpStream,
    /// The lane's position among all lanes, which spreads the lanes' schedules.
    index: usize,
    /// Requests this lane has sent.
    sent: usize,
    /// The scheduled time of the request in flight, if one is.
    in_flight: Option<Instant>,
    buf: Vec<u8>,
}

/// The schedule all lanes share: lane `l` sends its `k`-th request at
/// `start + interval·(k + l/lanes)`, and the `i`-th request overall is
/// lane `i mod lanes`'s `⌊i / lanes⌋`-th.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    interval: Duration,
    lanes: usize,
    total: usize,
}

impl Schedule {
    fn request(&self, lane: &Lane) -> Option<(usize, Instant)> {
        let i = lane.sent * self.lanes + lane.index;
        let due = self.start + self.interval.mul_f64(lane.sent as f64 + lane.index as f64 / self.lanes as f64);
        (i < self.total).then_some((i, due))
    }
}

/// One answered request: when it was due, from the schedule's start, and how
/// long after that its whole answer had arrived.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub due: Duration,
    pub latency: Duration,
}

/// Drives `lanes` through one epoll set until each has sent its share of the
/// schedule; returns the samples of 2xx answers and the count of others.
fn drive(mut lanes: Vec<Lane>, schedule: Schedule, requests: &[Vec<u8>]) -> anyhow::Result<(Vec<Sample>, usize)> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (slot, lane) in lanes.iter().enumerate() {
        lane.conn.set_nonblocking(true)?;
        epoll::add(&epoll, &lane.conn, epoll::EventData::new_u64(slot as u64), epoll::EventFlags::IN)?;
    }
    let (mut samples, mut failed) = (Vec::with_capacity(schedule.total / THREADS + 1), 0usize);
    let mut events = Vec::with_capacity(lanes.len());
    let mut chunk = [0u8; 4096];
    loop {
        // Send what is due; note when the next idle lane is due.
        let now = Instant::now();
        let mut next_due: Option<Instant> = None;
        let mut busy = false;
        for lane in lanes.iter_mut().filter(|l| l.in_flight.is_none()) {
            let Some((i, due)) = schedule.request(lane) else { continue };
            busy = true;
            if due <= now {
                // A request is far smaller than an idle socket's send buffer: it goes out whole.
                lane.conn.write_all(&requests[i % requests.len()]).context("sending a request")?;
                lane.in_flight = Some(due);
                lane.sent += 1;
            } else {
                next_due = Some(next_due.map_or(due, |d| d.min(due)));
            }
        }
        busy |= lanes.iter().any(|l| l.in_flight.is_some());
        if !busy {
            return Ok((samples, failed));
        }
        let timeout =
            next_due.map(|due| Timespec::try_from(due.saturating_duration_since(Instant::now()))).transpose()?;
        events.clear();
        epoll::wait(&epoll, rustix::buffer::spare_capacity(&mut events), timeout.as_ref())?;
        for event in &events {
            let lane = &mut lanes[event.data.u64() as usize];
            loop {
                match lane.conn.read(&mut chunk) {
                    Ok(0) => bail!("the server closed a keep-alive connection"),
                    Ok(n) => lane.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading an answer"),
                }
            }
            let Some((status, length)) = whole_response(&lane.buf)? else { continue };
            let due = lane.in_flight.take().context("an answer nobody asked for")?;
            lane.buf.drain(..length);
            match status {
                200..=299 => samples.push(Sample { due: due - schedule.start, latency: due.elapsed() }),
                _ => failed += 1,
            }
        }
    }
}

/// Sends `rate` GET requests per second for `seconds` over `lanes` keep-alive
/// connections to `addr`, each at its scheduled time, and measures latency from
/// that time. Returns the samples of 2xx answers, in the order they were due,
/// and the count of others.
pub fn open_loop(
    addr: &str,
    paths: &[String],
    token: &str,
    rate: f64,
    seconds: u32,
    lanes: usize,
) -> anyhow::Result<(Vec<Sample>, usize)> {
    let requests: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| format!("GET {p} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes())
        .collect();
    let mut by_thread: Vec<Vec<Lane>> = (0..THREADS).map(|_| Vec::new()).collect();
    for index in 0..lanes {
        let conn = TcpStream::connect(addr).with_context(|| format!("could not connect to {addr}"))?;
        conn.set_nodelay(true)?;
        by_thread[index % THREADS].push(Lane { conn, index, sent: 0, in_flight: None, buf: Vec::with_capacity(1024) });
    }
    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(200),
        interval: Duration::from_secs_f64(lanes as f64 / rate),
        lanes,
        total: (rate * f64::from(seconds)) as usize,
    };
    let requests = &requests;
    let per_thread: Vec<anyhow::Result<(Vec<Sample>, usize)>> = std::thread::scope(|scope| {
        let running: Vec<_> =
            by_thread.into_iter().map(|lanes| scope.spawn(move || drive(lanes, schedule, requests))).collect();
        running
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked"))))
            .collect()
    });
    let (mut all, mut failed) = (Vec::with_capacity(schedule.total), 0);
    for result in per_thread {
        let (samples, f) = result?;
        all.extend(samples);
        failed += f;
    }
    all.sort_by_key(|s| s.due);
    Ok((all, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_whole_only_with_its_whole_body() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(whole_response(answer).unwrap(), Some((200, answer.len())));
        assert_eq!(whole_response(&answer[..answer.len() - 1]).unwrap(), None);
        assert_eq!(whole_response(b"HTTP/1.1 503 Service Unavailable\r\n").unwrap(), None);
        let mut two = answer.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(whole_response(&two).unwrap(), Some((200, answer.len())), "only the first answer is taken");
    }

    #[test]
    fn every_request_is_answered_and_timed_from_its_schedule() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().to_string();
        // A server that answers each request on a connection, the third of every connection with a 500.
        std::thread::spawn(move || {
            for conn in server.incoming() {
                let mut conn = conn.unwrap();
                std::thread::spawn(move || {
                    let (mut buf, mut chunk, mut answered) = (Vec::new(), [0u8; 1024], 0);
                    while let Ok(n @ 1..) = conn.read(&mut chunk) {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            answered += 1;
                            let status = if answered == 3 { "500 Oops" } else { "200 OK" };
                            let _ =
                                conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").as_bytes());
                        }
                    }
                });
            }
        });
        let paths = vec!["/a".to_owned(), "/b".to_owned()];
        let started = Instant::now();
        let (samples, failed) = open_loop(&addr, &paths, "t", 400.0, 1, 4).unwrap();
        assert_eq!((samples.len(), failed), (396, 4), "400 requests, the third of each of 4 connections failed");
        assert!(samples.windows(2).all(|w| w[0].due <= w[1].due), "samples come in the order they were due");
        assert!(samples.last().unwrap().due >= Duration::from_millis(990), "the last is due near the end");
        assert!(started.elapsed() >= Duration::from_millis(990), "the schedule spans the whole second");
    }
}
