//! Idle connections a module's guest requests reuse, so a reconcile that
//! calls an API pays the TCP (and TLS) handshake once per origin, not once
//! per request.
//!
//! A pool belongs to one module's [`Outbound`](super::Outbound): a new
//! grant or a new version reloads the module and drops its pool, so no
//! connection outlives the grant it was checked under, and no two modules
//! share one. Connections are keyed by what the request named (scheme,
//! host, port), which is what the policy admitted and what the address
//! check ran for when the connection was made. A connection goes back to
//! the pool only once its response was read to the end; a body the guest
//! dropped early closes it. Idle connections expire after [`IDLE_TIMEOUT`]
//! (so a rotated CA bundle takes effect within it), and at most
//! [`MAX_IDLE_PER_ORIGIN`] are kept per origin.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::WasiBody;

use super::budget::Metered;
use super::origin::Scheme;

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 4;

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

/// An open connection: its request side and the task driving it, which
/// is aborted when the connection is dropped.
pub(super) struct Connection {
    pub sender: Sender,
    _driver: AbortOnDropJoinHandle<()>,
    idle_since: Instant,
}

impl Connection {
    pub fn new(sender: Sender, driver: AbortOnDropJoinHandle<()>) -> Self {
        Connection {
            sender,
            _driver: driver,
            idle_since: Instant::now(),
        }
    }

    fn expired(&self) -> bool {
        self.idle_since.elapsed() >= IDLE_TIMEOUT || self.sender.is_closed()
    }
}

/// One module's idle connections.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<Key, Vec<Connection>>>,
}

impl Pool {
    /// The most recently used idle connection for `key` that is ready for
    /// a request, if any.
    pub async fn take(&self, key: &Key) -> Option<Connection> {
        loop {
            let mut connection = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let list = idle.get_mut(key)?;
                list.retain(|c| !c.expired());
                list.pop()?
            };
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, connection.sender.ready()).await {
                return Some(connection);
            }
        }
    }

    /// Keeps `connection` for the next request to `key`.
    fn put(&self, key: Key, mut connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        connection.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(key).or_default();
        list.retain(|c| !c.expired());
        list.push(connection);
        if list.len() > MAX_IDLE_PER_ORIGIN {
            list.remove(0);
        }
    }

    /// Idle connections kept now, for every origin.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum()
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
