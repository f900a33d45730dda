//! The embedded default's first start: a small synthetic registry, one token
//! per role, and what a person needs to try the API straight away, printed on
//! standard output (logs go to standard error and never carry these numbers).

use std::net::SocketAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use hotline_core::{Item, Mode, PiiKey, Role, RuleBook};
use hotline_store::Store;
use hotline_store::synthetic::{AUTH_ISSUER, Generator, SampleHolder};
use serde_json::json;

const DEMO_HOLDERS: usize = 20;

pub struct Demo {
    tokens: Vec<(Role, String)>,
    card_sample: SampleHolder,
    phone_sample: SampleHolder,
}

pub async fn seed(store: &Store, key: &PiiKey) -> anyhow::Result<Demo> {
    let mut generator = Generator::new(rand::rng());
    let mut holders: Vec<SampleHolder> = (0..DEMO_HOLDERS).map(|_| generator.holder()).collect();
    // Make sure one sample has a smartphone: at night only smartphone reports are accepted.
    while !holders.iter().skip(1).any(|h| !h.smartphones.is_empty()) {
        holders.push(generator.holder());
    }
    store.insert_samples(key, &holders).await?;
    let mut tokens = Vec::new();
    for role in [Role::Operator, Role::Clerk, Role::Validator] {
        let (_, secret) = store.create_token(role, &format!("demo-{role}")).await?;
        tokens.push((role, secret));
    }
    let card_sample = holders[0].clone();
    let phone_sample =
        holders.iter().skip(1).find(|h| !h.smartphones.is_empty()).cloned().unwrap_or_else(|| holders[0].clone());
    tracing::info!(holders = holders.len(), "first start: demo registry and tokens created");
    Ok(Demo { tokens, card_sample, phone_sample })
}

impl Demo {
    fn token(&self, role: Role) -> &str {
        self.tokens.iter().find(|(r, _)| *r == role).map(|(_, s)| s.as_str()).unwrap_or("")
    }

    fn curl(&self, addr: SocketAddr, holder: &SampleHolder, item: Item) -> String {
        let mut body = json!({
            "call_id": "demo-call-1",
            "language": "en",
            "item": item.as_str(),
            "cause": "loss",
            "holder": {
                "individual_number": holder.individual_number.expose_digits(),
                "date_of_birth": holder.date_of_birth.format("%Y-%m-%d").to_string(),
            },
        });
        if item == Item::Smartphone
            && let Some(phone) = holder.smartphones.first()
        {
            body["device_id"] = json!(phone.device_id.as_str());
        }
        format!(
            "curl -sS -X POST http://{addr}/v1/suspensions -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-{}' -d '{}'",
            self.token(Role::Operator),
            item.as_str(),
            body
        )
    }

    /// The `openssl ocsp` line that asks about the user identification
    /// certificate a sample's suspension holds, verifying the answer against
    /// its issuer's certificate (`issuer_pem`).
    fn openssl(&self, addr: SocketAddr, holder: &SampleHolder, item: Item, issuer_pem: &Path) -> Option<String> {
        let certificates = match item {
            Item::Smartphone => &holder.smartphones.first()?.certificates,
            _ => &holder.card,
        };
        let certificate = certificates.iter().find(|c| c.issuer == AUTH_ISSUER)?;
        let pem = issuer_pem.display();
        Some(format!(
            "openssl ocsp -issuer {pem} -CAfile {pem} -serial 0x{} -url http://{addr}/ocsp -header 'Authorization=Bearer {}'",
            certificate.serial.as_str(),
            self.token(Role::Validator),
        ))
    }

    /// Prints what the first start made. `issuer_pems`: where the issuers'
    /// certificates are (the in-process CA's), for the OCSP line.
    pub fn print(&self, addr: SocketAddr, rules: &RuleBook, now: DateTime<Utc>, issuer_pems: Option<&Path>) {
        let night = rules.snapshot(now).map(|s| s.mode == Mode::Night).unwrap_or(false);
        let describe = |h: &SampleHolder| {
            let phone =
                h.smartphones.first().map(|p| format!(", smartphone {}", p.device_id.as_str())).unwrap_or_default();
            let certs: Vec<String> = h.card.iter().map(|c| format!("{}/{}", c.issuer, c.serial.as_str())).collect();
            format!(
                "{} born {} card [{}]{}",
                h.individual_number.expose_digits(),
                h.date_of_birth,
                certs.join(", "),
                phone
            )
        };
        println!();
        println!("Embedded default: first start. A demo registry of synthetic holders was created.");
        println!("Tokens (shown once; create more with `hotline token create`):");
        for (role, secret) in &self.tokens {
            println!("  {:<10} {secret}", role.as_str());
        }
        println!("Sample holders (synthetic):");
        println!("  {}", describe(&self.card_sample));
        println!("  {}", describe(&self.phone_sample));
        println!("API documentation: http://{addr}/docs");
        println!("The console for operators and clerks (sign in with a token above): http://{addr}/console");
        let first = if night {
            println!("It is night in Tokyo: only smartphone reports are accepted now. Suspend the sample smartphone:");
            println!("{}", self.curl(addr, &self.phone_sample, Item::Smartphone));
            println!("From 08:30 Tokyo time, suspend the sample card with:");
            println!("{}", self.curl(addr, &self.card_sample, Item::Card));
            (&self.phone_sample, Item::Smartphone)
        } else {
            println!("Suspend the sample card:");
            println!("{}", self.curl(addr, &self.card_sample, Item::Card));
            println!("Or the sample smartphone (accepted at any hour):");
            println!("{}", self.curl(addr, &self.phone_sample, Item::Smartphone));
            (&self.card_sample, Item::Card)
        };
        let issuer_pem = issuer_pems.map(|dir| dir.join(format!("{AUTH_ISSUER}.pem")));
        if let Some(line) = issuer_pem.and_then(|pem| self.openssl(addr, first.0, first.1, &pem)) {
            println!("Ask in OCSP, as a validator does, about the user identification certificate it suspends");
            println!("(good before, revoked with reason certificateHold after):");
            println!("{line}");
        }
        println!();
    }
}
