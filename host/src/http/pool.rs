//! Idle connections a module's guest requests reuse, so a reconcile that
//! calls an API pays the TCP (and TLS) handshake once per origin, not once
//! per request, and the next reconcile pays none.
//!
//! A pool belongs to one module's [`Outbound`](super::Outbound), which the
//! module's controller keeps across calls (`controller/outbound.rs`): a new
//! grant, new HTTP limits or a new version starts a new pool and drops the
//! old one, so no connection outlives the grant it was checked under, and
//! no two modules share one. Connections are keyed by what the request
//! named (scheme, host, port), which is what the policy admitted and what
//! the address check ran for when the connection was made.
//!
//! The pool lives as long as the module, so what a guest or a server does
//! to it must not add up:
//! - a connection goes back only once its response was read to the end; a
//!   body the guest dropped early, or that failed, closes it, so no call
//!   ever gets a connection with the rest of another call's answer on it;
//! - a connection is handed to one request at a time: it is out of the
//!   pool while in use;
//! - at most [`MAX_IDLE_PER_ORIGIN`] idle connections are kept per origin
//!   and [`MAX_IDLE`] in all (a wildcard grant names unboundedly many
//!   origins), the least recently used closed first;
//! - idle connections are closed after [`IDLE_TIMEOUT`], by a timer rather
//!   than at the next request, so a server that keeps them open does not
//!   keep them for the life of a quiet module;
//! - none is handed out more than [`MAX_AGE`] after it was opened, however
//!   busy: a rotated CA bundle, or a name that now resolves elsewhere (the
//!   address check ran when it was opened), takes effect within it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::WasiBody;

use super::budget::Metered;
use crate::origin::Scheme;

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after it was opened a connection is still handed out.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Idle connections kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 4;

/// Idle connections one module keeps, whatever the origins.
pub const MAX_IDLE: usize = 16;

/// How long a pooled connection may take to say it is ready for the next
/// request before a fresh one is made instead (it is ready at once unless
/// the server just closed it).
const READY_WAIT: Duration = Duration::from_millis(20);

/// The request side of an HTTP/1.1 connection.
pub(super) type Sender = hyper::client::conn::http1::SendRequest<Metered<WasiBody>>;

/// What a connection is kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

/// The bounds a pool keeps: the constants above, shorter in tests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub idle_timeout: Duration,
    pub max_age: Duration,
    pub per_origin: usize,
    pub total: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            idle_timeout: IDLE_TIMEOUT,
            max_age: MAX_AGE,
            per_origin: MAX_IDLE_PER_ORIGIN,
            total: MAX_IDLE,
        }
    }
}

/// An open connection: its request side and the task driving it, which
/// is aborted when the connection is dropped.
pub(super) struct Connection {
    pub sender: Sender,
    _driver: AbortOnDropJoinHandle<()>,
    opened: Instant,
    idle_since: Instant,
}

impl Connection {
    pub fn new(sender: Sender, driver: AbortOnDropJoinHandle<()>) -> Self {
        let now = Instant::now();
        Connection {
            sender,
            _driver: driver,
            opened: now,
            idle_since: now,
        }
    }

    /// When it stops being handed out.
    fn expires(&self, rules: &Rules) -> Instant {
        (self.idle_since + rules.idle_timeout).min(self.opened + rules.max_age)
    }

    fn usable(&self, rules: &Rules, now: Instant) -> bool {
        !self.sender.is_closed() && now < self.expires(rules)
    }
}

/// One module's idle connections.
pub(super) struct Pool {
    rules: Rules,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_key: HashMap<Key, Vec<Connection>>,
    /// Closes connections as they expire, while any is kept; aborted with
    /// the pool.
    reaper: Option<AbortOnDropJoinHandle<()>>,
}

impl Idle {
    fn count(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    /// Drops every connection that expired or that the server closed.
    fn sweep(&mut self, rules: &Rules, now: Instant) {
        self.by_key.retain(|_, list| {
            list.retain(|c| c.usable(rules, now));
            !list.is_empty()
        });
    }

    /// Drops the connection idle the longest, of any origin.
    fn evict_oldest(&mut self) {
        let oldest = self
            .by_key
            .iter()
            .flat_map(|(key, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, c)| (c.idle_since, key, i))
            })
            .min_by_key(|(since, _, _)| *since)
            .map(|(_, key, i)| (key.clone(), i));
        if let Some((key, i)) = oldest
            && let Some(list) = self.by_key.get_mut(&key)
        {
            list.remove(i);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    fn next_expiry(&self, rules: &Rules) -> Option<Instant> {
        self.by_key
            .values()
            .flatten()
            .map(|c| c.expires(rules))
            .min()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::with_rules(Rules::default())
    }
}

impl Pool {
    pub fn with_rules(rules: Rules) -> Self {
        Pool {
            rules,
            idle: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection for `key` that is ready for
    /// a request, if any. It leaves the pool: no one else can take it.
    pub async fn take(&self, key: &Key) -> Option<Connection> {
        loop {
            let mut connection = {
                let mut idle = self.lock();
                let now = Instant::now();
                let list = idle.by_key.get_mut(key)?;
                list.retain(|c| c.usable(&self.rules, now));
                let taken = list.pop();
                if list.is_empty() {
                    idle.by_key.remove(key);
                }
                taken?
            };
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, connection.sender.ready()).await {
                return Some(connection);
            }
        }
    }

    /// Keeps `connection` for the next request to `key`, within the bounds.
    fn put(self: &Arc<Self>, key: Key, mut connection: Connection) {
        let now = Instant::now();
        connection.idle_since = now;
        if !connection.usable(&self.rules, now) {
            return;
        }
        let mut idle = self.lock();
        idle.sweep(&self.rules, now);
        let list = idle.by_key.entry(key).or_default();
        list.push(connection);
        if list.len() > self.rules.per_origin {
            list.remove(0);
        }
        while idle.count() > self.rules.total {
            idle.evict_oldest();
        }
        if idle.reaper.is_none() {
            idle.reaper = Some(wasmtime_wasi::runtime::spawn(reap(Arc::downgrade(self))));
        }
    }

    /// Idle connections kept now, for every origin.
    pub fn idle(&self) -> usize {
        self.lock().count()
    }
}

/// Closes `pool`'s connections as they expire; ends when none is left (a
/// later `put` starts another) or the pool is gone.
async fn reap(pool: Weak<Pool>) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let mut idle = pool.lock();
            idle.sweep(&pool.rules, Instant::now());
            let next = idle.next_expiry(&pool.rules);
            if next.is_none() {
                // This task's own handle: dropping it marks the task
                // aborted, which takes effect only at an await, and there
                // is none left.
                idle.reaper = None;
            }
            next
        };
        match next {
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => return,
        }
    }
}

/// A response body that hands its connection back to `pool` once it has
/// been read to the end. Dropped before that, it drops the connection.
pub(super) struct Returning<B> {
    inner: B,
    home: Option<(Arc<Pool>, Key, Connection)>,
}

impl<B> Returning<B> {
    pub fn new(inner: B, pool: Arc<Pool>, key: Key, connection: Connection) -> Self {
        Returning {
            inner,
            home: Some((pool, key, connection)),
        }
    }

    fn give_back(&mut self) {
        if let Some((pool, key, connection)) = self.home.take() {
            pool.put(key, connection);
        }
    }
}

impl<B> Body for Returning<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            // A connection whose response failed is not reused.
            Poll::Ready(Some(Err(_))) => self.home = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};
    use tokio::io::{AsyncReadExt, DuplexStream};
    use wasmtime_wasi_http::io::TokioIo;

    use super::*;

    fn key(host: &str) -> Key {
        Key {
            scheme: Scheme::Http,
            host: host.to_owned(),
            port: 80,
        }
    }

    /// A connection over an in-memory pipe, and the server's end of it.
    async fn connection() -> (Connection, DuplexStream) {
        let (client, server) = tokio::io::duplex(4096);
        let (sender, conn) =
            hyper::client::conn::http1::handshake::<_, Metered<WasiBody>>(TokioIo::new(client))
                .await
                .expect("handshake");
        let driver = wasmtime_wasi::runtime::spawn(async move {
            let _ = conn.await;
        });
        (Connection::new(sender, driver), server)
    }

    /// Whether the client closed the connection whose server end this is,
    /// waiting up to `wait` for it.
    async fn closed_within(server: &mut DuplexStream, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, server.read(&mut byte)).await,
            Ok(Ok(0))
        )
    }

    async fn closed(server: &mut DuplexStream) -> bool {
        closed_within(server, Duration::from_secs(2)).await
    }

    #[tokio::test]
    async fn idle_connections_are_bounded_per_origin_and_in_all() {
        let pool = Arc::new(Pool::default());
        let mut servers = Vec::new();
        for _ in 0..MAX_IDLE_PER_ORIGIN + 2 {
            let (c, server) = connection().await;
            pool.put(key("api.example"), c);
            servers.push(server);
        }
        assert_eq!(pool.idle(), MAX_IDLE_PER_ORIGIN);
        assert!(
            closed(&mut servers[0]).await,
            "the oldest past the bound is closed, not only forgotten"
        );

        // A wildcard grant admits any number of origins: the total holds.
        for i in 0..MAX_IDLE * 2 {
            let (c, server) = connection().await;
            pool.put(key(&format!("h{i}.example")), c);
            servers.push(server);
        }
        assert_eq!(pool.idle(), MAX_IDLE);
        // The least recently used went first: the first origin's are gone.
        assert!(pool.take(&key("api.example")).await.is_none());
        assert!(
            pool.take(&key(&format!("h{}.example", MAX_IDLE * 2 - 1)))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn idle_connections_close_on_time_without_another_request() {
        let pool = Arc::new(Pool::with_rules(Rules {
            idle_timeout: Duration::from_millis(100),
            ..Rules::default()
        }));
        let (first, mut first_server) = connection().await;
        let (second, mut second_server) = connection().await;
        pool.put(key("a.example"), first);
        pool.put(key("b.example"), second);
        assert_eq!(pool.idle(), 2);
        assert!(!closed_within(&mut first_server, Duration::from_millis(20)).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.idle(), 0);
        assert!(closed(&mut first_server).await && closed(&mut second_server).await);

        // The timer ended with nothing left to close; the next one kept
        // starts it again.
        let (third, mut third_server) = connection().await;
        pool.put(key("a.example"), third);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.idle(), 0);
        assert!(closed(&mut third_server).await);
    }

    #[tokio::test]
    async fn a_connection_past_its_age_is_neither_handed_out_nor_kept() {
        let pool = Arc::new(Pool::with_rules(Rules {
            max_age: Duration::from_millis(100),
            ..Rules::default()
        }));
        let (kept, _server) = connection().await;
        pool.put(key("a.example"), kept);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            pool.take(&key("a.example")).await.is_none(),
            "however recently it was used"
        );
        let (old, _server) = connection().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        pool.put(key("a.example"), old);
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn an_idle_connection_goes_to_one_request_at_a_time() {
        let pool = Arc::new(Pool::default());
        let (c, _server) = connection().await;
        pool.put(key("a.example"), c);
        let wanted = key("a.example");
        let (one, other) = tokio::join!(pool.take(&wanted), pool.take(&wanted));
        assert!(
            one.is_some() != other.is_some(),
            "exactly one taker gets it"
        );
        assert_eq!(pool.idle(), 0);
    }

    /// A body whose first half arrives and whose rest never does.
    struct HalfSent(bool);

    impl Body for HalfSent {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return Poll::Pending;
            }
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first half")))))
        }
    }

    #[tokio::test]
    async fn only_a_response_read_to_the_end_returns_its_connection() {
        let pool = Arc::new(Pool::default());
        let (c, _server) = connection().await;
        let body = Returning::new(
            Full::new(Bytes::from_static(b"answer")),
            pool.clone(),
            key("a.example"),
            c,
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "answer");
        assert_eq!(pool.idle(), 1);

        // A guest that leaves the rest unread: the connection is closed,
        // never handed to the next call with the rest still on it.
        let (c, mut server) = connection().await;
        let mut body = Returning::new(HalfSent(false), pool.clone(), key("a.example"), c);
        let frame = body.frame().await.expect("a frame").unwrap();
        assert_eq!(frame.into_data().unwrap(), "first half");
        drop(body);
        assert_eq!(pool.idle(), 1, "only the first one");
        assert!(closed(&mut server).await);
    }

    #[tokio::test]
    async fn dropping_the_pool_closes_its_connections() {
        let pool = Arc::new(Pool::default());
        let (c, mut server) = connection().await;
        pool.put(key("a.example"), c);
        drop(pool);
        assert!(closed(&mut server).await);
    }
}
