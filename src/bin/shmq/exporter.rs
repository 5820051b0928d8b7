// SPDX-License-Identifier: MIT OR Apache-2.0
//! `shmq exporter --listen ADDR:PORT PATH…`: serves the queues' counters over HTTP at `/metrics`
//! in the Prometheus text format (the same text as `shmq stat --format prometheus`), for
//! Prometheus to scrape.
//!
//! Each scrape inspects every queue afresh ([`shmq::Queue::inspect`]: read permission only,
//! nothing registered, no mapping), so the exporter holds nothing open between scrapes and a
//! queue created after it started is picked up. It listens on loopback unless told otherwise:
//! `--listen :9717` or `--listen 9717` mean `127.0.0.1:9717`; another interface must be named
//! (`--listen 0.0.0.0:9717`). `GET` and `HEAD` on `/metrics` answer 200, other methods there 405,
//! any other path 404.
//!
//! It is a network service, so no client can stop it from answering the others:
//! - **Every connection is its own task** (HTTP/1.1 by hyper on a current-thread tokio runtime):
//!   a client that sends requests and never reads the answers stalls only its own connection.
//! - **Bounded requests.** A request head longer than [`MAX_REQUEST_HEAD`] bytes is refused
//!   (431) and its connection closed, so an endless request line costs at most that buffer.
//! - **Bounded time.** A connection must send a whole request head within
//!   [`HEADER_READ_TIMEOUT`] of being ready for one (so idle and trickling connections close),
//!   and is closed after [`CONNECTION_LIFETIME`]: gracefully (the request in progress is
//!   answered), or dropped if its answer cannot be written within [`CLOSE_GRACE`] more.
//! - **Bounded connections.** Beyond `--max-connections` open at once, a new one is answered
//!   503 and closed (the first [`REFUSALS`] of them; any more at the same time are closed
//!   without an answer); accepting never waits for a connection to end.
//! - **Scrapes off the network thread.** Reading the queue files is blocking work: it runs on
//!   tokio's blocking pool, one scrape at a time, and a request that gets no text within
//!   [`SCRAPE_TIMEOUT`] is answered 503 (a scrape that never ends holds one thread, not the
//!   server).
//! - **Accept errors are survived.** Running out of descriptors (`EMFILE`, `ENFILE`) or memory
//!   while accepting is logged to stderr, and accepting resumes after a backoff that grows to
//!   [`ACCEPT_BACKOFF_MAX`]; only errors that mean the listening socket itself is unusable end
//!   the exporter, with a message and a non-zero status.

use crate::failure::Failure;
use crate::metrics;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The port when `--listen` is not given (not registered anywhere; pick your own with --listen).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";
/// Connections served at once when `--max-connections` is not given.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 64;
/// Longest request head (request line and headers) a connection may buffer, in bytes.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long a connection may take to send a request head once it is ready for one.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection is served before it is closed (a scraper simply connects again).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long a connection being closed may take to take its last answer.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long a request waits for a scrape of the queue files.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait after a failed `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// See [`ACCEPT_BACKOFF_MIN`].
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connections beyond `--max-connections` that are answered 503 at once; more are closed
/// without an answer.
const REFUSALS: usize = 16;
/// How long a refused connection is read from before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// The answer to a connection beyond `--max-connections`, written without waiting.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 34\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections; retry later\n";

/// `shmq exporter`: serves until killed. Prints `listening on http://ADDR/metrics` once bound
/// (with the real port when PORT was 0). Returns only on a fatal error.
pub fn exporter(listen: &str, paths: &[PathBuf], max_connections: u32) -> Result<(), Failure> {
    let addr = listen_address(listen)?;
    let cannot_listen = |e: std::io::Error| Failure::Other(format!("cannot listen on {addr}: {e}"));
    let listener = std::net::TcpListener::bind(addr).map_err(cannot_listen)?;
    listener.set_nonblocking(true).map_err(cannot_listen)?;
    let bound = listener.local_addr().unwrap_or(addr);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the exporter's runtime: {e}")))?;
    let listener = {
        // Registering the socket with the reactor needs the runtime's context.
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(cannot_listen)?
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{bound}/metrics")
        .and_then(|()| stdout.flush())
        .map_err(Failure::Stdout)?;
    drop(stdout);
    let scraper = Arc::new(Scraper::new(paths));
    runtime.block_on(serve(listener, bound, scraper, max_connections as usize))
}

/// Accepts connections until a fatal error, each served by its own task.
async fn serve(
    listener: tokio::net::TcpListener,
    bound: SocketAddr,
    scraper: Arc<Scraper>,
    max_connections: usize,
) -> Result<(), Failure> {
    let connections = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    let mut backoff = Duration::ZERO;
    let mut failures = AcceptFailures::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) if is_fatal(&e) => {
                return Err(Failure::Other(format!(
                    "accepting connections on {bound}: {e}"
                )))
            }
            Err(e) => {
                // The connection waits in the listen backlog; try again once something
                // (a descriptor, memory) may have been freed.
                backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                failures.log(&e, backoff);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            tokio::spawn(connection(stream, permit, scraper.clone()));
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            tokio::spawn(refuse(stream, permit));
        }
        // Else dropped at once: closed (reset) without an answer.
    }
}

/// Answers a connection beyond `--max-connections` 503 and closes it. The request is read (and
/// dropped) for a moment first: closing a socket with unread bytes would reset the connection,
/// and the client might lose the answer. `_permit` counts it among [`REFUSALS`].
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The answer fits in an empty socket buffer: never wait to write it.
    if stream.try_write(BUSY).is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = MAX_REQUEST_HEAD;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
}

/// Whether an error of `accept` means the listening socket itself is unusable. Every other one
/// (out of descriptors or memory, a connection aborted before it was accepted, a firewall's
/// refusal) concerns one connection or a passing shortage.
fn is_fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

/// Failed accepts, logged to stderr at most once a second (with how many since the last line),
/// so that a long shortage of descriptors does not flood the log.
#[derive(Default)]
struct AcceptFailures {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    fn log(&mut self, e: &std::io::Error, backoff: Duration) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        eprintln!(
            "shmq exporter: cannot accept a connection ({} time(s) since the last report): {e}; \
             still serving, retrying in {} ms",
            self.unlogged,
            backoff.as_millis()
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

/// Serves one connection for at most its lifetime (see the module doc); `_permit` counts it
/// among the open connections until it ends.
async fn connection(stream: TcpStream, _permit: OwnedSemaphorePermit, scraper: Arc<Scraper>) {
    let service = hyper::service::service_fn(move |request| {
        let scraper = scraper.clone();
        async move { Ok::<_, Infallible>(answer(&request, &scraper).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        // `Content-Type`, `Allow`, as the exporter has always written them.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    // A connection that ends with an error (a client gone, a request too long, too slow) is
    // its client's problem: hyper has answered what it could.
    if tokio::time::timeout(CONNECTION_LIFETIME, conn.as_mut())
        .await
        .is_ok()
    {
        return;
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
}

/// Answers one request.
async fn answer(request: &Request<Incoming>, scraper: &Scraper) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    match *request.method() {
        // hyper leaves out the body of a HEAD answer itself.
        Method::GET | Method::HEAD => match scraper.scrape().await {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are allowed here\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Renders the metrics of the queues on the blocking pool, one scrape at a time.
struct Scraper {
    paths: Arc<[PathBuf]>,
    /// One permit: held by the scrape that runs, until it ends (even after its request gave up
    /// waiting), so that scrapes that hang cannot pile up threads.
    running: Arc<Semaphore>,
}

impl Scraper {
    fn new(paths: &[PathBuf]) -> Scraper {
        Scraper {
            paths: paths.into(),
            running: Arc::new(Semaphore::new(1)),
        }
    }

    /// The exposition text, or why there is none within [`SCRAPE_TIMEOUT`].
    async fn scrape(&self) -> Result<String, &'static str> {
        const LATE: &str = "the queue files could not be read in time; retry later\n";
        let deadline = Instant::now() + SCRAPE_TIMEOUT;
        let permit = tokio::time::timeout_at(deadline, self.running.clone().acquire_owned())
            .await
            .map_err(|_| LATE)?
            .expect("the scrape semaphore is never closed");
        let paths = self.paths.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            metrics::render(&metrics::inspect_all(&paths))
        });
        match tokio::time::timeout_at(deadline, job).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err("reading the queue files failed\n"),
            Err(_) => Err(LATE),
        }
    }
}

/// `ADDR:PORT` as given, or loopback for `:PORT` and `PORT`.
fn listen_address(listen: &str) -> Result<SocketAddr, Failure> {
    let invalid = || {
        Failure::Other(format!(
            "--listen {listen}: not an address such as 127.0.0.1:9717, [::1]:9717, :9717 or 9717"
        ))
    };
    let port_only = listen.strip_prefix(':').unwrap_or(listen);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    listen
        .to_socket_addrs()
        .map_err(|_| invalid())?
        .next()
        .ok_or_else(invalid)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_listens_on_loopback_and_addresses_are_taken_as_given() {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(listen_address(":9717").ok(), Some(loopback(9717)));
        assert_eq!(listen_address("9100").ok(), Some(loopback(9100)));
        assert_eq!(
            listen_address("0.0.0.0:80").ok(),
            Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)))
        );
        assert_eq!(
            listen_address("[::1]:9").ok(),
            Some("[::1]:9".parse().unwrap())
        );
        assert!(listen_address("nonsense").is_err());
        assert!(listen_address(":99999").is_err());
    }
}
