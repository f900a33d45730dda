//! Operators and validators under a fault, as a failover drill has them:
//! operators' calls, each a suspension with its own Idempotency-Key sent to
//! the API instances in turn (and, if the drill says so, sent again with the
//! same key after a `503` or a lost connection, as the console does), and
//! validators asking about certificates all the while. Every answer is
//! recorded, so the drill can say what was acknowledged, what failed, how
//! long an attempt took, and whether any validator was told something false.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a client waits for one attempt: past the service's own
/// 10-second request deadline, so a wait this long is a hang.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// One operator's call: a suspension request and its key.
#[derive(Debug, Clone)]
pub struct Call {
    pub key: String,
    pub body: Value,
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The call, as it was sent.
    pub call: Call,
    /// The final status (201 when acknowledged).
    pub status: u16,
    /// The final body.
    pub body: Value,
    /// Attempts made (more than one only when retrying).
    pub attempts: u32,
    /// Attempts answered `503`, or cut off without an answer.
    pub outages: u32,
    /// Attempts answered 500 or with another unexpected status.
    pub errors: Vec<String>,
    /// The longest single attempt.
    pub longest: Duration,
    /// When the call was acknowledged (since the drill began), if it was.
    pub acknowledged_at: Option<Duration>,
    /// When its last attempt was sent (since the drill began).
    pub last_sent_at: Duration,
}

/// How operators send their calls.
#[derive(Debug, Clone, Copy)]
pub struct Operators {
    /// Operators calling at once.
    pub clients: usize,
    /// An attempt answered `503` (or lost) is sent again with the same key until answered otherwise.
    pub retry: bool,
    /// Each operator takes a new call at most this often (a steady rate), or as soon as the last ends.
    pub pace: Option<Duration>,
}

/// Sends `calls` from `clients` concurrent operators to `bases` in turn.
/// With `retry`, an attempt answered `503` (or lost) is sent again with the
/// same key until it is answered otherwise.
pub async fn operators(bases: &[String], token: &str, calls: Vec<Call>, clients: usize, retry: bool) -> Vec<Answered> {
    let how = Operators { clients, retry, pace: None };
    operators_until(bases, token, calls, how, Arc::new(AtomicBool::new(false))).await
}

/// As [`operators`], sent as `how` says, and no new call is taken once `stop`
/// is set (a call under way is finished).
pub async fn operators_until(
    bases: &[String],
    token: &str,
    calls: Vec<Call>,
    how: Operators,
    stop: Arc<AtomicBool>,
) -> Vec<Answered> {
    let started = Instant::now();
    let queue = Arc::new(tokio::sync::Mutex::new(calls.into_iter().enumerate().collect::<Vec<_>>()));
    let client = reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build().unwrap_or_default();
    let mut tasks = Vec::new();
    for _ in 0..how.clients {
        let (queue, client, bases, token, stop) =
            (queue.clone(), client.clone(), bases.to_vec(), token.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some((i, call)) = queue.lock().await.pop() else { break };
                let began = Instant::now();
                answered.push(one_call(&client, &bases, i, &token, call, how.retry, started).await);
                if let Some(pace) = how.pace {
                    tokio::time::sleep(pace.saturating_sub(began.elapsed())).await;
                }
            }
            answered
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

async fn one_call(
    client: &reqwest::Client,
    bases: &[String],
    turn: usize,
    token: &str,
    call: Call,
    retry: bool,
    started: Instant,
) -> Answered {
    let mut answered = Answered {
        call,
        status: 0,
        body: Value::Null,
        attempts: 0,
        outages: 0,
        errors: Vec::new(),
        longest: Duration::ZERO,
        acknowledged_at: None,
        last_sent_at: Duration::ZERO,
    };
    loop {
        let base = &bases[(turn + answered.attempts as usize) % bases.len()];
        answered.attempts += 1;
        let began = Instant::now();
        answered.last_sent_at = started.elapsed();
        let sent = client
            .post(format!("{base}/v1/suspensions"))
            .bearer_auth(token)
            .header("Idempotency-Key", &answered.call.key)
            .json(&answered.call.body)
            .send()
            .await;
        let status = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                answered.body = response.json().await.unwrap_or(Value::Null);
                status
            }
            // A lost connection or a client timeout: no answer.
            Err(_) => 0,
        };
        answered.longest = answered.longest.max(began.elapsed());
        answered.status = status;
        match status {
            200 | 201 => {
                answered.acknowledged_at = Some(started.elapsed());
                return answered;
            }
            0 | 503 => answered.outages += 1,
            other => answered.errors.push(format!("{other}: {}", answered.body)),
        }
        if !retry || !matches!(status, 0 | 503) {
            return answered;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What validators were told while watching.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub answered: u64,
    pub unanswered: u64,
    /// Answers that contradicted what the registry held (a held certificate read good, …).
    pub false_answers: Vec<String>,
    /// The oldest `as_of` an answer carried, as its age when it was given.
    pub oldest_as_of_age: Duration,
    /// Answers whose `as_of` lay in the future of when they were asked.
    pub from_the_future: u64,
}

/// Validators asking `bases` in turn about `certificates` (issuer, serial,
/// the status it must read) until `stop` is set.
pub async fn validators(
    bases: Vec<String>,
    token: String,
    certificates: Vec<(String, String, &'static str)>,
    stop: Arc<AtomicBool>,
) -> Watched {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let mut watched = Watched::default();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (issuer, serial, want) = &certificates[turn % certificates.len()];
        let base = &bases[turn % bases.len()];
        turn += 1;
        let asked_at = chrono::Utc::now();
        let answer = client.get(format!("{base}/v1/status/{issuer}/{serial}")).bearer_auth(&token).send().await;
        let Ok(answer) = answer else {
            watched.unanswered += 1;
            continue;
        };
        if answer.status() != reqwest::StatusCode::OK {
            watched.unanswered += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        watched.answered += 1;
        if body["status"] != *want {
            watched.false_answers.push(format!("{issuer}/{serial}: {body} (must be {want})"));
        }
        if let Some(as_of) = body["as_of"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            let age = (asked_at - as_of.to_utc()).to_std().unwrap_or_default();
            watched.oldest_as_of_age = watched.oldest_as_of_age.max(age);
            if as_of.to_utc() > chrono::Utc::now() {
                watched.from_the_future += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watched
}

/// A smartphone suspension of a seeded holder (`hotline seed --samples`), with its key.
pub fn phone_call(holder: &Value, key: String) -> Call {
    let body = serde_json::json!({
        "call_id": key.clone(), "language": "ja", "item": "smartphone", "cause": "theft",
        "device_id": holder["smartphones"][0]["device_id"],
        "holder": {"individual_number": holder["individual_number"], "date_of_birth": holder["date_of_birth"]},
    });
    Call { key, body }
}

/// The certificates a seeded holder's first smartphone carries: (issuer, serial).
pub fn phone_certificates(holder: &Value) -> Vec<(String, String)> {
    holder["smartphones"][0]["certificates"]
        .as_array()
        .map(|certs| {
            certs
                .iter()
                .map(|c| {
                    (
                        c["issuer"].as_str().unwrap_or_default().to_owned(),
                        c["serial"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
