//! ca-sim's command line, in the library so that the deployment tests read
//! its flags from clap's own description of it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use hotline_ca::Faults;

/// A development certificate authority: idempotent revocations, signed CRLs, injected faults.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Where the issuing CAs' keys and the journal live.
    #[arg(long, default_value = "ca-sim-data")]
    pub data: PathBuf,
    /// Added latency on each revocation request (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of revocation requests answered 503 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of revocation requests never answered (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Share of revocation requests applied whose answer is then lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
}

impl Args {
    /// The faults the flags ask for.
    pub fn faults(&self) -> Faults {
        Faults {
            latency_ms: self.latency_ms,
            error_rate: self.error_rate,
            timeout_rate: self.timeout_rate,
            lost_response_rate: self.lost_response_rate,
            bad_crl_signature: false,
            scheduled_crl: false,
        }
    }
}
