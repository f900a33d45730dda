//! Sending leased events to the CA and settling each one.

use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use hotline_ca::{RevocationRequest, SendError};
use hotline_store::{OutboxEvent, UnreadableEvent};
use tracing::Instrument;

use crate::Worker;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The CA applied it (now or, for a replay, earlier).
    Confirmed,
    /// It will be tried again later.
    Retrying,
    /// Given up on: kept as a dead letter.
    DeadLettered,
    /// Already settled by another worker.
    AlreadySettled,
}

impl Worker {
    /// Claims one batch of due events and delivers it; returns how many were claimed.
    pub async fn drain_once(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.settings.lease)?;
        let leased = self.store.claim_outbox(&self.owner, now, now + lease, self.settings.batch).await?;
        let claimed = leased.events.len() + leased.unreadable.len();
        for unreadable in &leased.unreadable {
            if let Err(e) = self.dead_letter_unreadable(unreadable).await {
                tracing::error!(event_id = %unreadable.event_id, error = %format!("{e:#}"), "could not dead-letter an unreadable outbox row");
            }
        }
        let in_hand = std::sync::Mutex::new(leased.events.iter().map(|e| e.seq).collect::<Vec<i64>>());
        let in_hand = &in_hand;
        let deliveries = futures::stream::iter(leased.events).for_each_concurrent(self.settings.concurrency, |event| async move {
            if let Err(e) = self.deliver(&event).await {
                // The lease runs out and the event is tried again.
                tracing::error!(event_id = %event.event_id, error = %format!("{e:#}"), "could not settle an outbox event");
            }
            lock(in_hand).retain(|seq| *seq != event.seq);
        });
        // While the batch is being sent, its leases are renewed every third of a lease, so a
        // lease can be short: a worker that dies stops renewing, and its events are taken over
        // within about one lease, while a live worker keeps them however long the CA takes.
        // The renewal is a future of its own beside the deliveries, so that while it waits
        // on the database the deliveries go on being polled (a settle half done holds row locks).
        let renewing = async {
            let mut renew = tokio::time::interval_at(
                tokio::time::Instant::now() + self.settings.lease / 3,
                self.settings.lease / 3,
            );
            loop {
                renew.tick().await;
                let seqs = lock(in_hand).clone();
                let until = Utc::now() + lease;
                if let Err(e) = self.store.renew_leases(&self.owner, &seqs, until).await {
                    tracing::warn!(error = %format!("{e:#}"), "could not renew outbox leases; they run out unless renewed next time");
                }
            }
        };
        tokio::select! {
            () = deliveries => Ok(claimed),
            () = renewing => unreachable!("the renewal beats until the batch is settled"),
        }
    }

    /// Sends one event and records the outcome in the store, in a span that
    /// continues the trace of the transaction that wrote the event.
    pub async fn deliver(&self, event: &OutboxEvent) -> anyhow::Result<Delivery> {
        let span = tracing::info_span!(
            "outbox deliver",
            otel.kind = "consumer",
            event_id = %event.event_id,
            action = %event.action,
            attempt = event.attempts,
            outcome = tracing::field::Empty,
        );
        if let Some(traceparent) = &event.traceparent {
            hotline_trace::continue_from_traceparent(&span, traceparent);
        }
        let delivery = self.send_and_settle(event).instrument(span.clone()).await;
        if let Ok(outcome) = &delivery {
            span.record("outcome", tracing::field::debug(outcome));
        }
        delivery
    }

    async fn send_and_settle(&self, event: &OutboxEvent) -> anyhow::Result<Delivery> {
        let request = RevocationRequest {
            event_id: event.event_id.clone(),
            issuer: event.issuer.clone(),
            serial: event.serial.clone(),
            action: event.action,
            reason: event.reason,
        };
        let started = Instant::now();
        let sent = self.ca.send(&request).await;
        self.metrics.ca_call(started.elapsed(), outcome_label(&sent));
        match sent {
            Ok(_) => {
                let settled = self.store.outbox_done(event, Utc::now()).await?;
                if !settled {
                    return Ok(Delivery::AlreadySettled);
                }
                let lag = (Utc::now() - event.created_at).to_std().unwrap_or_default();
                self.metrics.confirmed(lag);
                Ok(Delivery::Confirmed)
            }
            Err(e) if e.is_permanent() => self.dead_letter(event, &e.to_string()).await,
            Err(e) if event.attempts >= self.settings.max_attempts => {
                self.dead_letter(event, &format!("gave up after {} attempts: {e}", event.attempts)).await
            }
            Err(e) => {
                let wait = self.settings.backoff.delay(event.attempts);
                let next = Utc::now() + chrono::Duration::from_std(wait)?;
                tracing::warn!(event_id = %event.event_id, attempts = event.attempts, retry_in_ms = wait.as_millis() as u64, error = %e, "CA delivery failed; will retry");
                self.store.outbox_retry_later(event, next, &e.to_string()).await?;
                Ok(Delivery::Retrying)
            }
        }
    }

    async fn dead_letter(&self, event: &OutboxEvent, error: &str) -> anyhow::Result<Delivery> {
        if !self.store.outbox_dead(event, Utc::now(), error).await? {
            return Ok(Delivery::AlreadySettled);
        }
        self.metrics.dead_letters.inc();
        tracing::error!(
            event_id = %event.event_id, issuer = %event.issuer, serial = %event.serial,
            action = %event.action, attempts = event.attempts, error,
            "outbox event dead-lettered; `hotline outbox retry-dead` re-queues it"
        );
        Ok(Delivery::DeadLettered)
    }

    async fn dead_letter_unreadable(&self, event: &UnreadableEvent) -> anyhow::Result<()> {
        if self.store.outbox_dead_unreadable(event, Utc::now()).await? {
            self.metrics.dead_letters.inc();
            tracing::error!(event_id = %event.event_id, error = %event.error, "an outbox row that does not read was dead-lettered");
        }
        Ok(())
    }
}

fn outcome_label(sent: &Result<hotline_ca::RevocationAnswer, SendError>) -> &'static str {
    match sent {
        Ok(answer) if answer.replay => "replayed",
        Ok(_) => "applied",
        Err(SendError::Refused { .. }) => "refused",
        Err(SendError::Unavailable(_)) => "unavailable",
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
