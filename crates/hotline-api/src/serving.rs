//! Serving the API thread-per-core: one single-threaded runtime per serving
//! thread, so a request stays on the thread that accepted its connection, as
//! with nginx's workers. One listening socket; the acceptor hands each new
//! connection to the serving threads in turn.
//!
//! Why not one multi-threaded runtime: validators' status queries are a few
//! microseconds of work each, and a work-stealing runtime moved them between
//! threads, waking one from the other, for about a sixth of the throughput
//! (docs/BENCHMARKS.md).
//!
//! Why not a `SO_REUSEPORT` socket per thread: the kernel then spreads
//! connections by a hash of their addresses, and validators hold a few
//! long-lived keep-alive connections each, so one thread could carry 36 of 64
//! connections for as long as they lived, and saturate while the other idled.
//! Taking turns splits them evenly; the hand-over costs once per connection.
//!
//! Everything else (the acceptor, the cache sync, the near-cache, the CA sync
//! worker, the on-call routes) runs on the caller's runtime. Handlers may
//! still use the database and Redis: a connection opened by a serving thread
//! is driven by that thread's runtime and works from any other while the
//! thread lives; one left behind when it stops fails its next health check and
//! the pool replaces it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::{AppState, api_app, app, on_call_app, ops};

/// What the serving threads serve: [`Api`](crate::Api), or in tests a bare router.
trait ApiService:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

impl<S> ApiService for S where
    S: tower::Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

/// A connection accepted for a serving thread, not yet bound to its runtime.
type Handed = (std::net::TcpStream, SocketAddr);

/// Serves the API on `listener` with `threads` serving threads (at least
/// one) until `shutdown` completes, then lets in-flight requests finish. With
/// an `on_call` listener, `/metrics` and `/ops` are served there instead of
/// beside the API. Dropping the returned future stops the serving threads too.
pub async fn serve(
    listener: TcpListener,
    threads: usize,
    on_call: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let sampler = tokio::spawn(ops::run_sampler(state.clone()));
    let state_timeouts = state.timeouts;
    let (router, admin) = match on_call {
        None => (app(state), None),
        Some(on_call) => {
            // The on-call address stays up while the API drains, and stops with it.
            let admin = tokio::spawn(axum::serve(on_call, on_call_app(state.clone())).into_future());
            (api_app(state), Some(admin))
        }
    };
    let header_read_timeout = state_timeouts.header_read;
    let served = serve_on_threads(listener, threads, router, shutdown, header_read_timeout).await;
    if let Some(admin) = admin {
        admin.abort();
    }
    sampler.abort();
    served
}

async fn serve_on_threads<S: ApiService>(
    listener: TcpListener,
    threads: usize,
    router: S,
    shutdown: impl Future<Output = ()>,
    header_read_timeout: Duration,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    // Dropped with this future: the threads then stop as if shut down.
    let (stop, stopped) = watch::channel(false);
    let (done, mut finished) = mpsc::unbounded_channel();
    let threads = threads.max(1);
    let mut hand_to = Vec::with_capacity(threads);
    for i in 0..threads {
        let (to_thread, connections) = mpsc::unbounded_channel();
        hand_to.push(to_thread);
        let (router, stopped, done) = (router.clone(), stopped.clone(), done.clone());
        let listener = HandedConnections { connections, addr };
        std::thread::Builder::new().name(format!("hotline-http-{i}")).spawn(move || {
            // A thread that panics sends nothing, and is noticed by the count below.
            let _ = done.send(serve_on_this_thread(listener, router, stopped, header_read_timeout));
        })?;
    }
    drop(done);
    let mut outcome = Ok(());
    // Leaving the select drops the acceptor, which closes the listening socket.
    tokio::select! {
        () = shutdown => {}
        () = hand_out(listener, hand_to) => outcome = Err(io::Error::other("a serving thread stopped")),
        early = finished.recv() => {
            outcome = Err(early.and_then(Result::err).unwrap_or_else(|| io::Error::other("a serving thread stopped")));
        }
    }
    let _ = stop.send(true);
    let mut ended = 0;
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

/// Accepts connections and hands them to the serving threads in turn; returns
/// only if a thread is gone.
async fn hand_out(mut listener: TcpListener, threads: Vec<mpsc::UnboundedSender<Handed>>) {
    for thread in threads.iter().cycle() {
        // axum's accept logs and waits out errors such as running out of file descriptors.
        let (connection, peer) = axum::serve::Listener::accept(&mut listener).await;
        // Each answer is one write: send it at once instead of waiting for an ACK (Nagle).
        if let Err(e) = connection.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        match connection.into_std() {
            Ok(connection) => {
                if thread.send((connection, peer)).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not hand a connection to a serving thread"),
        }
    }
}

/// The connections handed to one serving thread, as axum's listener.
struct HandedConnections {
    connections: mpsc::UnboundedReceiver<Handed>,
    addr: SocketAddr,
}

impl axum::serve::Listener for HandedConnections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            // The acceptor is gone only when serving ends: wait for the shutdown.
            let Some((connection, peer)) = self.connections.recv().await else {
                return std::future::pending().await;
            };
            // Registers the connection with this thread's runtime.
            match TcpStream::from_std(connection) {
                Ok(connection) => return (connection, peer),
                Err(e) => tracing::warn!(error = %e, "a serving thread could not take a connection"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// One serving thread: its own runtime, the connections handed to it, the
/// shared router. Each connection is HTTP/1 with a bound on how long a
/// client may take to send a request's head (`header_read_timeout`), so a
/// client that trickles its headers cannot hold a connection for ever; when
/// told to stop, it stops accepting and lets each connection finish the
/// request in hand.
fn serve_on_this_thread<S: ApiService>(
    mut listener: HandedConnections,
    router: S,
    mut stopped: watch::Receiver<bool>,
    header_read_timeout: Duration,
) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            tokio::select! {
                (connection, _peer) = axum::serve::Listener::accept(&mut listener) => {
                    let service = router.clone().map_request(|request: Request<hyper::body::Incoming>| request.map(axum::body::Body::new));
                    let served = builder.serve_connection(TokioIo::new(connection), TowerToHyperService::new(service));
                    let served = graceful.watch(served);
                    tokio::spawn(async move {
                        // A client that goes away, or a head that takes too long, ends its connection: nothing to report.
                        let _ = served.await;
                    });
                }
                // An error means the sender is gone: stop as well.
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
        graceful.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answers with the name of the thread that served the request.
    fn which_thread() -> Router {
        Router::new().route("/", get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }))
    }

    async fn ask(addr: SocketAddr) -> io::Result<String> {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await?;
        Ok(answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned())
    }

    async fn localhost() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn connections_are_spread_evenly_and_a_shutdown_drains_and_closes_the_port() {
        let listener = localhost().await;
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let serving = tokio::spawn(serve_on_threads(listener, 2, which_thread(), stopped, Duration::from_secs(10)));
        let mut served = HashMap::<String, usize>::new();
        for _ in 0..40 {
            *served.entry(ask(addr).await.unwrap()).or_default() += 1;
        }
        assert_eq!(served, HashMap::from([("hotline-http-0".to_owned(), 20), ("hotline-http-1".to_owned(), 20)]));
        stop.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(10), serving).await.expect("the threads must stop");
        assert!(served.unwrap().is_ok());
        assert!(ask(addr).await.is_err(), "nothing listens after the shutdown");
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = localhost().await;
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(serve_on_threads(
            listener,
            1,
            which_thread(),
            std::future::pending(),
            Duration::from_millis(300),
        ));
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut buf = Vec::new();
        // Not a timing assertion: the bound only keeps a broken server from hanging the test.
        let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(_))), "the server closes a connection whose head does not come: {read:?}");
        assert!(ask(addr).await.unwrap().starts_with("hotline-http-"), "and goes on serving others");
        serving.abort();
    }

    #[tokio::test]
    async fn dropping_the_server_stops_its_threads() {
        let listener = localhost().await;
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(serve_on_threads(
            listener,
            2,
            which_thread(),
            std::future::pending(),
            Duration::from_secs(10),
        ));
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
}
