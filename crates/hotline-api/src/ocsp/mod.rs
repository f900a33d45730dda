//! The OCSP responder of every API instance: a request read by
//! `hotline-ocsp`, its issuer found among those with a responder certificate,
//! each certificate looked up through the same tiers as the JSON status API
//! (near-cache → shared cache → store, each only while complete and fresh),
//! and the answer taken from the signed-response cache or signed anew.
//! Never `good` because a tier was cold, stale or down: when none can say,
//! the answer is `tryLater`.

mod metrics;
pub mod provision;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, Serial};
use hotline_ocsp::{
    Asked, CacheKey, Known, KnownIssuer, Lookup, Malformed, OcspResponseStatus, Query, Responder, SignedCache, Signers,
};

pub use metrics::OcspMetrics;

use crate::metrics::Metrics;
use crate::status_service::{Listing, StatusService};

/// How the responder is tuned.
#[derive(Debug, Clone)]
pub struct OcspSettings {
    /// `nextUpdate` − `thisUpdate`: how long a client may rely on an answer.
    pub validity: chrono::Duration,
    /// A kept answer is signed again once this much of its validity has passed.
    pub resign_after: chrono::Duration,
    /// Answer clients without a validator token.
    pub anonymous: bool,
    /// The most bytes of signed answers kept.
    pub cache_bytes: u64,
    /// Signing threads, and the signatures that may wait for them before `tryLater`.
    pub signer_threads: usize,
    pub signer_queue: usize,
}

impl Default for OcspSettings {
    fn default() -> Self {
        Self {
            validity: chrono::Duration::seconds(60),
            resign_after: chrono::Duration::seconds(30),
            anonymous: false,
            cache_bytes: 128 << 20,
            signer_threads: 1,
            signer_queue: 256,
        }
    }
}

/// One issuer the responder answers for.
#[derive(Clone)]
pub struct Served {
    pub issuer: Arc<KnownIssuer>,
    /// None until a responder certificate is installed (the CA was unreachable at start).
    pub responder: Option<Arc<Responder>>,
}

/// The responder: issuers, the signed-response cache and the signers.
pub struct OcspService {
    pub settings: OcspSettings,
    served: RwLock<Vec<Served>>,
    cache: SignedCache,
    signers: Signers,
    /// Kept answers being signed again in the background, so each is signed once.
    refreshing: std::sync::Mutex<std::collections::HashSet<CacheKey>>,
    /// `GET` requests read before, by their base64. Validators send the same
    /// bytes again and again (that is what lets HTTP caches keep answers),
    /// and reading one (base64, DER, serial) was about a tenth of the cost of
    /// a kept answer. Reading is a function of the bytes alone, so a
    /// remembered request is the same request; the status is still looked up
    /// each time.
    read_before: quick_cache::sync::Cache<Box<str>, Arc<Query>, RequestBytes>,
}

/// A remembered request's weight: its base64, and about what its CertIDs hold.
#[derive(Clone)]
struct RequestBytes;

impl quick_cache::Weighter<Box<str>, Arc<Query>> for RequestBytes {
    fn weight(&self, encoded: &Box<str>, query: &Arc<Query>) -> u64 {
        (encoded.len() + 64 + 192 * query.asked.len()) as u64
    }
}

/// Remembered requests hold at most this part of the signed-response cache's bytes.
const READ_BEFORE_SHARE: u64 = 4;

/// An OCSP answer for the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub der: bytes::Bytes,
    /// Set for a successful response: its times and caching headers.
    pub signed: Option<Arc<hotline_ocsp::Signed>>,
    /// Whether a shared HTTP cache may keep it (one certificate, no nonce, successful).
    pub cacheable: bool,
}

impl Reply {
    fn error(status: OcspResponseStatus) -> Self {
        Self { der: hotline_ocsp::error(status).into(), signed: None, cacheable: false }
    }

    fn signed(signed: Arc<hotline_ocsp::Signed>, cacheable: bool) -> Self {
        Self { der: signed.der.clone(), signed: Some(signed), cacheable }
    }

    pub fn malformed() -> Self {
        Self::error(OcspResponseStatus::MalformedRequest)
    }

    pub fn unauthorized() -> Self {
        Self::error(OcspResponseStatus::Unauthorized)
    }

    pub fn try_later() -> Self {
        Self::error(OcspResponseStatus::TryLater)
    }

    pub fn internal_error() -> Self {
        Self::error(OcspResponseStatus::InternalError)
    }
}

fn known(listing: Listing) -> Known {
    match listing {
        Listing::Good => Known::Good,
        Listing::Unlisted => Known::Unknown,
        Listing::NotGood(record) => match record.status {
            CertificateStatus::Good => Known::Good,
            // Held or revoked: RFC 6960's `revoked`, with certificateHold for a hold.
            _ => Known::Revoked { since: hotline_ocsp::to_second(record.since), reason: record.reason },
        },
    }
}

fn cert_status_label(answers: &[(&Asked, Known)]) -> &'static str {
    match answers {
        [(_, Known::Good)] => "good",
        [(_, Known::Revoked { .. })] => "revoked",
        [(_, Known::Unknown)] => "unknown",
        _ => "several",
    }
}

impl OcspService {
    pub fn new(settings: OcspSettings) -> std::io::Result<Self> {
        let cache = SignedCache::new(settings.cache_bytes, settings.resign_after);
        let signers = Signers::start(settings.signer_threads, settings.signer_queue)?;
        let read_bytes = (settings.cache_bytes / READ_BEFORE_SHARE).max(1 << 16);
        let read_before = quick_cache::sync::Cache::with_weighter(
            usize::try_from(read_bytes / 256).unwrap_or(usize::MAX),
            read_bytes,
            RequestBytes,
        );
        Ok(Self { settings, served: RwLock::default(), cache, signers, refreshing: Default::default(), read_before })
    }

    /// The request a `GET` path's base64 (percent-decoded) holds: remembered
    /// if it was read before, else decoded, read, and remembered unless it
    /// carries a nonce (a nonce is never sent twice).
    pub fn read_get(
        &self,
        encoded: &str,
        decode: impl FnOnce(&str) -> Option<Vec<u8>>,
    ) -> Result<Arc<Query>, Malformed> {
        if let Some(query) = self.read_before.get(encoded) {
            return Ok(query);
        }
        let der = decode(encoded).ok_or(Malformed::NotBase64)?;
        let query = Arc::new(hotline_ocsp::parse(&der)?);
        if query.nonce.is_none() {
            self.read_before.insert(encoded.into(), query.clone());
        }
        Ok(query)
    }

    /// Serves `issuer`, with its responder when there is one (replacing any before).
    pub fn install(&self, issuer: Arc<KnownIssuer>, responder: Option<Arc<Responder>>) {
        let mut served = self.served.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        served.retain(|s| s.issuer.id != issuer.id);
        served.push(Served { issuer, responder });
    }

    /// The issuer that every certificate asked about names, if it is served.
    fn serving(&self, query: &Query) -> Option<Served> {
        let served = self.served.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        served.iter().find(|s| query.asked.iter().all(|a| s.issuer.names(a))).cloned()
    }

    /// The issuers served now.
    pub fn served(&self) -> Vec<Served> {
        self.served.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Signed answers kept: (entries, bytes).
    pub fn cache_size(&self) -> (usize, u64) {
        self.cache.size()
    }

    /// Answers a request read from the wire, for a caller who may (`authorized`) ask.
    pub async fn answer(
        self: &Arc<Self>,
        query: &Query,
        authorized: bool,
        status: &StatusService,
        metrics: &Arc<Metrics>,
    ) -> Reply {
        let m = &metrics.ocsp;
        if !authorized && !self.settings.anonymous {
            m.response("unauthorized", "none", "none");
            return Reply::unauthorized();
        }
        // Every certificate asked about must be one issuer's: a response is signed for one issuer.
        let Some(issuer) = self.serving(query) else {
            m.response("unauthorized", "none", "none");
            return Reply::unauthorized();
        };
        let now = Utc::now();
        let Some(responder) = issuer.responder.clone().filter(|r| r.is_valid_at(now)) else {
            m.response("try_later", "none", "none");
            return Reply::try_later();
        };
        let keys: Vec<(IssuerId, Serial)> =
            query.asked.iter().map(|a| (issuer.issuer.id.clone(), a.serial.clone())).collect();
        let Ok(listed) = status.listed(&keys, metrics).await else {
            m.response("try_later", "none", "unavailable");
            return Reply::try_later();
        };
        let answers: Vec<(&Asked, Known)> = query.asked.iter().zip(listed.listings.iter().map(|l| known(*l))).collect();
        let cert_status = cert_status_label(&answers);
        let cacheable = answers.len() == 1 && query.nonce.is_none();
        let key = cacheable.then(|| CacheKey::new(&keys[0].0, &keys[0].1, answers[0].0.hash, answers[0].1));
        if let Some(key) = &key {
            let (lookup, kept) = self.cache.get(key, now);
            let result = match lookup {
                Lookup::Hit => "hit",
                Lookup::Miss => "miss",
                Lookup::Stale => "stale",
            };
            m.lookup(result);
            if let Some(kept) = kept {
                // A kept answer is signed again only from a later confirmation: while the
                // store cannot answer, the caches' instant stands still or is older.
                if lookup == Lookup::Stale && listed.as_of > kept.this_update {
                    self.refresh(key.clone(), query.asked[0].clone(), responder.clone(), listed.as_of, metrics);
                }
                m.response("successful", cert_status, listed.source.as_str());
                return Reply::signed(kept, true);
            }
        }
        let owned: Vec<(Asked, Known)> = answers.iter().map(|(a, k)| ((*a).clone(), *k)).collect();
        let signed = match self.sign(responder, owned, listed.as_of, query.nonce.clone(), metrics).await {
            Ok(signed) => signed,
            Err(reply) => {
                let status = if reply.der.as_ref() == hotline_ocsp::error(OcspResponseStatus::TryLater) {
                    "try_later"
                } else {
                    "internal_error"
                };
                m.response(status, cert_status, listed.source.as_str());
                return reply;
            }
        };
        m.response("successful", cert_status, listed.source.as_str());
        if let Some(key) = key {
            self.cache.put(key, signed.clone());
        }
        Reply::signed(signed, cacheable)
    }

    /// Signs answers complete as of `as_of` on the signing pool; `tryLater`
    /// when its queue is full, `internalError` if signing fails.
    async fn sign(
        &self,
        responder: Arc<Responder>,
        answers: Vec<(Asked, Known)>,
        as_of: DateTime<Utc>,
        nonce: Option<hotline_ocsp::Nonce>,
        metrics: &Metrics,
    ) -> Result<Arc<hotline_ocsp::Signed>, Reply> {
        let m = &metrics.ocsp;
        let next_update = as_of + self.settings.validity;
        let started = Instant::now();
        let signed = self
            .signers
            .run(move || {
                let answers: Vec<(&Asked, Known)> = answers.iter().map(|(a, k)| (a, *k)).collect();
                hotline_ocsp::sign(&responder, &answers, as_of, next_update, nonce.as_ref(), Utc::now())
            })
            .await;
        match signed {
            Err(_saturated) => {
                m.saturated.inc();
                Err(Reply::try_later())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not sign an OCSP response");
                Err(Reply::internal_error())
            }
            Ok(Ok(signed)) => {
                m.signatures.inc();
                m.signing_duration.observe(started.elapsed().as_secs_f64());
                Ok(Arc::new(signed))
            }
        }
    }

    /// Signs a kept answer again in the background (once per key at a time),
    /// while the one kept is sent: re-signing never holds up a request.
    fn refresh(
        self: &Arc<Self>,
        key: CacheKey,
        asked: Asked,
        responder: Arc<Responder>,
        as_of: DateTime<Utc>,
        metrics: &Arc<Metrics>,
    ) {
        if !lock(&self.refreshing).insert(key.clone()) {
            return;
        }
        let (service, metrics) = (self.clone(), metrics.clone());
        tokio::spawn(async move {
            let known = key.known;
            if let Ok(signed) = service.sign(responder, vec![(asked, known)], as_of, None, &metrics).await {
                service.cache.put(key.clone(), signed);
            }
            lock(&service.refreshing).remove(&key);
        });
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
