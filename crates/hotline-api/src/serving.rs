//! Serving the API thread-per-core: one single-threaded runtime per serving
//! thread, each accepting on its own `SO_REUSEPORT` socket bound to the same
//! address, so the kernel spreads connections over the threads and a request
//! stays on the thread that accepted it, as with nginx's workers.
//!
//! Why not one multi-threaded runtime: validators' status queries are a few
//! microseconds of work each, and a work-stealing runtime moved them between
//! threads, waking one from the other, for about a sixth of the throughput
//! (docs/BENCHMARKS.md).
//!
//! Everything else (the cache sync, the near-cache, the CA sync worker, the
//! on-call routes) runs on the caller's runtime. Handlers may still use the
//! database and Redis: a connection opened by a serving thread is driven by
//! that thread's runtime and works from any other while the thread lives;
//! one left behind when it stops fails its next health check and the pool
//! replaces it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};

use crate::{AppState, api_app, app, on_call_app, ops};

/// Pending connections each socket queues before they are accepted.
const BACKLOG: i32 = 1024;

/// The serving threads' sockets, all bound to one address.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl Listeners {
    /// Binds one socket per serving thread (at least one) to `addr`; port 0
    /// picks one free port for all of them.
    ///
    /// The address is first bound without `SO_REUSEPORT`, which fails if
    /// anything already listens there, another instance of this service
    /// included: two instances must never silently share a port.
    pub fn bind(addr: SocketAddr, threads: usize) -> io::Result<Self> {
        let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
        let sockets = (0..threads.max(1)).map(|_| reuse_port_listener(addr)).collect::<io::Result<_>>()?;
        Ok(Self { sockets, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many threads will serve.
    pub fn threads(&self) -> usize {
        self.sockets.len()
    }
}

fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves the API on `listeners` until `shutdown` completes, then lets
/// in-flight requests finish. With an `on_call` listener, `/metrics` and
/// `/ops` are served there instead of beside the API. Dropping the returned
/// future stops the serving threads too.
pub async fn serve(
    listeners: Listeners,
    on_call: Option<tokio::net::TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let sampler = tokio::spawn(ops::run_sampler(state.clone()));
    let (router, admin) = match on_call {
        None => (app(state), None),
        Some(on_call) => {
            // The on-call address stays up while the API drains, and stops with it.
            let admin = tokio::spawn(axum::serve(on_call, on_call_app(state.clone())).into_future());
            (api_app(state), Some(admin))
        }
    };
    let served = serve_on_threads(listeners, router, shutdown).await;
    if let Some(admin) = admin {
        admin.abort();
    }
    sampler.abort();
    served
}

async fn serve_on_threads(listeners: Listeners, router: Router, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    // Dropped with this future: the threads then stop as if shut down.
    let (stop, stopped) = watch::channel(false);
    let (done, mut finished) = mpsc::unbounded_channel();
    let threads = listeners.threads();
    for (i, listener) in listeners.sockets.into_iter().enumerate() {
        let (router, stopped, done) = (router.clone(), stopped.clone(), done.clone());
        std::thread::Builder::new().name(format!("hotline-http-{i}")).spawn(move || {
            // A thread that panics sends nothing, and is noticed by the count below.
            let _ = done.send(serve_on_this_thread(listener, router, stopped));
        })?;
    }
    drop(done);
    let mut outcome = Ok(());
    tokio::select! {
        () = shutdown => {}
        early = finished.recv() => {
            outcome = Err(early.and_then(Result::err).unwrap_or_else(|| io::Error::other("a serving thread stopped")));
        }
    }
    let _ = stop.send(true);
    let mut ended = usize::from(outcome.is_err());
    while let Some(result) = finished.recv().await {
        ended += 1;
        if let (Ok(()), Err(e)) = (&outcome, result) {
            outcome = Err(e);
        }
    }
    if outcome.is_ok() && ended < threads {
        outcome = Err(io::Error::other("a serving thread panicked"));
    }
    outcome
}

/// One serving thread: its own runtime, its own socket, the shared router.
fn serve_on_this_thread(
    listener: std::net::TcpListener,
    router: Router,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // An error means the sender is gone: stop as well.
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answers with the name of the thread that served the request.
    fn which_thread() -> Router {
        Router::new().route("/", get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }))
    }

    async fn ask(addr: SocketAddr) -> io::Result<String> {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await?;
        Ok(answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned())
    }

    fn localhost() -> SocketAddr {
        ([127, 0, 0, 1], 0).into()
    }

    #[tokio::test]
    async fn every_thread_serves_and_a_shutdown_drains_and_closes_the_port() {
        let listeners = Listeners::bind(localhost(), 2).unwrap();
        let addr = listeners.local_addr();
        assert_eq!(listeners.threads(), 2);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve_on_threads(listeners, which_thread(), async move {
            let _ = stopped.await;
        }));
        // The kernel spreads connections over the sockets by their ports:
        // 40 connections all on one thread would happen once in 2^39.
        let mut threads = HashSet::new();
        for _ in 0..40 {
            threads.insert(ask(addr).await.unwrap());
        }
        assert_eq!(threads, HashSet::from(["hotline-http-0".to_owned(), "hotline-http-1".to_owned()]));
        stop.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(10), serving).await.expect("the threads must stop");
        assert!(served.unwrap().is_ok());
        assert!(ask(addr).await.is_err(), "nothing listens after the shutdown");
    }

    #[tokio::test]
    async fn dropping_the_server_stops_its_threads() {
        let listeners = Listeners::bind(localhost(), 2).unwrap();
        let addr = listeners.local_addr();
        let serving = tokio::spawn(serve_on_threads(listeners, which_thread(), std::future::pending()));
        assert!(ask(addr).await.unwrap().starts_with("hotline-http-"));
        serving.abort();
        let mut closed = false;
        for _ in 0..200 {
            if ask(addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(closed, "the serving threads must stop when the server is dropped");
    }

    #[test]
    fn an_address_in_use_is_refused_even_by_another_instance() {
        let first = Listeners::bind(localhost(), 2).unwrap();
        let taken = first.local_addr();
        assert!(Listeners::bind(taken, 2).is_err(), "two instances must not share a port");
        let plain = std::net::TcpListener::bind(localhost()).unwrap();
        assert!(Listeners::bind(plain.local_addr().unwrap(), 1).is_err());
    }
}
