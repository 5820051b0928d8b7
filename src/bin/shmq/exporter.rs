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
//! any other path 404. Requests are answered one at a time: a scrape is a few preads per queue.

use crate::failure::Failure;
use crate::metrics;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use tiny_http::{Header, Method, Request, Response, Server};

/// The port when `--listen` is not given (not registered anywhere; pick your own with --listen).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";

/// `shmq exporter`: serves until killed. Prints `listening on http://ADDR/metrics` once bound
/// (with the real port when PORT was 0).
pub fn exporter(listen: &str, paths: &[PathBuf]) -> Result<(), Failure> {
    let addr = listen_address(listen)?;
    let server =
        Server::http(addr).map_err(|e| Failure::Other(format!("cannot listen on {addr}: {e}")))?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{bound}/metrics")
        .and_then(|()| stdout.flush())
        .map_err(Failure::Stdout)?;
    drop(stdout);
    for request in server.incoming_requests() {
        // A client that goes away before its answer is written is its own problem.
        let _ = answer(request, paths);
    }
    Ok(())
}

/// Answers one request.
fn answer(request: Request, paths: &[PathBuf]) -> std::io::Result<()> {
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let text = |s: &str| Header::from_bytes("Content-Type", s).expect("a valid header");
    if path != "/metrics" {
        let body = "not found: the metrics are at /metrics\n";
        let response = Response::from_string(body)
            .with_status_code(404)
            .with_header(text("text/plain; charset=utf-8"));
        return request.respond(response);
    }
    match request.method() {
        Method::Get | Method::Head => {
            // tiny_http leaves out the body of a HEAD answer itself.
            let body = metrics::render(&metrics::inspect_all(paths));
            let response = Response::from_string(body).with_header(text(metrics::CONTENT_TYPE));
            request.respond(response)
        }
        _ => {
            let response = Response::from_string("only GET and HEAD are allowed here\n")
                .with_status_code(405)
                .with_header(Header::from_bytes("Allow", "GET, HEAD").expect("a valid header"))
                .with_header(text("text/plain; charset=utf-8"));
            request.respond(response)
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
