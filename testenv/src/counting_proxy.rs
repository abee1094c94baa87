//! [`CountingProxy`]: an HTTP/1.1 proxy on loopback that counts the TCP
//! connections its clients open, for tests that check a client reuses
//! them.
//!
//! A plain TCP relay cannot show reuse in front of PowerDNS: its webserver
//! answers every request with `Connection: close` (4.7 hard-codes it), so
//! each client connection would end after one request whatever the client
//! does. This proxy keeps the client's side open the way a keep-alive
//! server would: it reads requests one after another on each accepted
//! connection, sends each to the upstream over a connection of its own
//! (read to the upstream's close), and writes the answer back without the
//! `Connection: close`. Only the client side is what it counts as
//! connections. Threads and blocking sockets only; everything is torn down
//! on drop.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest request or response head read; a test's client sends far less.
const MAX_HEAD: usize = 64 * 1024;

/// How long the upstream may take to answer one request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy to one upstream; dropping it closes its listener and
/// every connection it holds.
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    bytes_from_clients: AtomicU64,
    bytes_to_clients: AtomicU64,
    /// The client connections open now, to shut down on drop.
    open: Mutex<HashMap<usize, TcpStream>>,
}

impl CountingProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<CountingProxy> {
        Self::start_at(0, upstream)
    }

    /// A proxy on `127.0.0.1:port` forwarding to `upstream`; fails when the
    /// port is taken.
    pub fn start_at(port: u16, upstream: SocketAddr) -> io::Result<CountingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            bytes_from_clients: AtomicU64::new(0),
            bytes_to_clients: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let accepting = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("counting-proxy".into())
            .spawn(move || accept(listener, accepting))?;
        Ok(CountingProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:<port>`, the origin clients reach it at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections clients opened to it so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests it forwarded so far (answered or not).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Bytes read from clients and written to them so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.bytes_from_clients.load(Ordering::SeqCst),
            self.shared.bytes_to_clients.load(Ordering::SeqCst),
        )
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // The acceptor blocks in accept(): a connection of our own wakes it.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, stream) in self
            .shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0;
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = next_id;
        next_id += 1;
        if let Ok(kept) = stream.try_clone() {
            shared
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, kept);
        }
        // Counted once it is where a drop finds it.
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let serving = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("counting-proxy-conn".into())
            .spawn(move || {
                let _ = serve(stream, &serving);
                serving
                    .open
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
        if spawned.is_err() {
            shared
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

/// Serves one client connection until the client closes it, asks to, or
/// an answer cannot be framed for keep-alive.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let request = Head::parse(&head)?;
        let mut upstream_request = request.rewritten(&[("Connection", "close")]);
        let body = read_body(&mut reader, &request)?;
        shared
            .bytes_from_clients
            .fetch_add((head.len() + body.len()) as u64, Ordering::SeqCst);
        upstream_request.extend_from_slice(&body);

        let mut upstream = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_TIMEOUT)?;
        upstream.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
        upstream.write_all(&upstream_request)?;
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer)?;

        let (answer, keep_open) = for_client(&answer, &request);
        writer.write_all(&answer)?;
        writer.flush()?;
        shared
            .bytes_to_clients
            .fetch_add(answer.len() as u64, Ordering::SeqCst);
        if !keep_open || request.closes() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// The upstream's answer as the client gets it, and whether the client's
/// connection can stay open after it: `Connection` dropped, and a body
/// that was delimited by the upstream's close given a length instead.
fn for_client(answer: &[u8], request: &Head) -> (Vec<u8>, bool) {
    let Some(end) = find(answer, b"\r\n\r\n") else {
        return (answer.to_vec(), false);
    };
    let Ok(head) = Head::parse(&answer[..end + 4]) else {
        return (answer.to_vec(), false);
    };
    let body = &answer[end + 4..];
    let status: u16 = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let bodiless = request.method() == "HEAD" || status < 200 || status == 204 || status == 304;
    let length = body.len().to_string();
    let extra: &[(&str, &str)] =
        if bodiless || head.header("content-length").is_some() || head.chunked() {
            &[]
        } else {
            &[("Content-Length", &length)]
        };
    let mut out = head.rewritten(extra);
    out.extend_from_slice(body);
    (out, true)
}

/// The next request head on `reader`, through its blank line; None when
/// the client closed the connection between requests.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = reader.read_until(b'\n', &mut head)?;
        if read == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the head ended early",
                ))
            };
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the head is too long",
            ));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            // Blank lines before a request line are allowed (RFC 9112 2.2).
            if before == 0 {
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// The request body as it came, framing included: `Content-Length` bytes,
/// or chunks through the last one and its trailers.
fn read_body(reader: &mut impl BufRead, request: &Head) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if request.chunked() {
        loop {
            let start = body.len();
            reader.read_until(b'\n', &mut body)?;
            let line = String::from_utf8_lossy(&body[start..]);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad chunk size"))?;
            if size == 0 {
                // Trailers, through the blank line.
                loop {
                    let start = body.len();
                    if reader.read_until(b'\n', &mut body)? == 0 || &body[start..] == b"\r\n" {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            reader.read_exact(&mut body[start..])?;
        }
    }
    let length = match request.header("content-length") {
        Some(value) => value
            .trim()
            .parse::<usize>()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad Content-Length"))?,
        None => 0,
    };
    body.resize(length, 0);
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// A request or response head: its first line and its header fields.
struct Head {
    start: String,
    fields: Vec<(String, String)>,
}

impl Head {
    fn parse(head: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(head)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a head that is not text"))?;
        let mut lines = text.split("\r\n").filter(|line| !line.is_empty());
        let start = lines
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "an empty head"))?
            .to_owned();
        let fields = lines
            .map(|line| {
                line.split_once(':')
                    .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a bad header"))
            })
            .collect::<io::Result<_>>()?;
        Ok(Head { start, fields })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn method(&self) -> &str {
        self.start.split_whitespace().next().unwrap_or("")
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The head written out again without its hop-by-hop connection
    /// fields, with `extra` fields added.
    fn rewritten(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.fields {
            if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
            {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every request with `Connection: close`, as
    /// PowerDNS does, echoing the request line in the body.
    fn closing_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let Ok(Some(head)) = read_head(&mut reader) else {
                        return;
                    };
                    let request = Head::parse(&head).unwrap();
                    let body = read_body(&mut reader, &request).unwrap();
                    let echo = format!("{} {}", request.start, body.len());
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{echo}",
                        echo.len()
                    );
                });
            }
        });
        addr
    }

    fn response(reader: &mut BufReader<TcpStream>) -> (String, String) {
        let head = read_head(reader).unwrap().expect("an answer");
        let head = Head::parse(&head).unwrap();
        let length: usize = head.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(head.header("connection").is_none(), "kept open");
        (head.start, String::from_utf8(body).unwrap())
    }

    #[test]
    fn requests_on_one_client_connection_count_once() {
        let proxy = CountingProxy::start(closing_upstream()).unwrap();
        let client = TcpStream::connect(proxy.address()).unwrap();
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut writer = client;
        writer
            .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut reader).1, "GET /a HTTP/1.1 0");
        writer
            .write_all(b"PATCH /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap();
        assert_eq!(response(&mut reader).1, "PATCH /b HTTP/1.1 3");
        writer
            .write_all(
                b"PATCH /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
            )
            .unwrap();
        assert_eq!(response(&mut reader).1, "PATCH /c HTTP/1.1 20");
        assert_eq!((proxy.connections(), proxy.requests()), (1, 3));

        let second = TcpStream::connect(proxy.address()).unwrap();
        let mut reader = BufReader::new(second.try_clone().unwrap());
        (&second)
            .write_all(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut reader).1, "GET /d HTTP/1.1 0");
        assert_eq!((proxy.connections(), proxy.requests()), (2, 4));
    }

    #[test]
    fn dropping_the_proxy_closes_its_connections() {
        let proxy = CountingProxy::start(closing_upstream()).unwrap();
        let client = TcpStream::connect(proxy.address()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // Accepted before the drop.
        while proxy.connections() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let address = proxy.address();
        drop(proxy);
        let mut rest = Vec::new();
        assert_eq!((&client).read_to_end(&mut rest).unwrap(), 0, "closed");
        assert!(TcpStream::connect(address).is_err(), "no longer listening");
    }
}
