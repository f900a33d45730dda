//! The signing pool: signatures are made on threads of their own, fed by a
//! bounded queue. The serving threads keep answering from the signed-response
//! cache while signers are busy, and when the queue is full a request is
//! answered `tryLater` at once instead of waiting in an unbounded line.

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The signers were saturated (or are gone): answer `tryLater`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OCSP signers are saturated")]
pub struct Saturated;

/// A pool of signing threads; they stop when it is dropped.
pub struct Signers {
    queue: mpsc::Sender<Job>,
}

impl Signers {
    /// `threads` signing threads behind a queue of `queue` jobs.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>(queue.max(1));
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new().name(format!("hotline-ocsp-sign-{i}")).spawn(move || {
                loop {
                    // One thread waits on the queue at a time; the others wait for the lock.
                    let job = match receiver.lock() {
                        Ok(mut r) => r.blocking_recv(),
                        Err(_) => None,
                    };
                    match job {
                        Some(job) => job(),
                        None => return,
                    }
                }
            })?;
        }
        Ok(Self { queue: sender })
    }

    /// Runs `work` on a signing thread, or refuses at once if the queue is full.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Saturated> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.queue.try_send(job).map_err(|_| Saturated)?;
        answered.await.map_err(|_| Saturated)
    }

    /// Jobs waiting for a signer now.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}
