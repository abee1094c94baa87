//! What one guest call may spend on HTTP: requests, bytes each way, and
//! time, which is never more than what remains of the call's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error;

use crate::limits::HttpLimits;

/// How long before the call's own deadline HTTP gives up, so the guest
/// still gets an error it can report rather than being cut off itself.
fn margin(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(200))
}

/// One call's spending, shared by its requests and their bodies.
#[derive(Debug)]
pub struct CallBudget {
    limits: HttpLimits,
    requests: AtomicU32,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    /// When every request of this call must be done.
    pub deadline: Instant,
}

impl CallBudget {
    /// A fresh budget for a call that may run for `timeout` from now.
    pub fn new(limits: HttpLimits, timeout: Duration) -> Arc<Self> {
        Arc::new(CallBudget {
            limits,
            requests: AtomicU32::new(0),
            request_bytes: AtomicU64::new(0),
            response_bytes: AtomicU64::new(0),
            deadline: Instant::now() + timeout.saturating_sub(margin(timeout)),
        })
    }

    /// Takes one request from the budget; false when it is spent.
    pub fn take_request(&self) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed) < self.limits.requests
    }

    /// `wanted` (the guest's own timeout, if it set one) bounded by what
    /// remains until the deadline.
    pub fn bound(&self, wanted: Option<Duration>) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        wanted.map_or(left, |w| w.min(left))
    }
}

/// Which way a metered body flows.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// From the guest to the server.
    Request,
    /// From the server to the guest.
    Response,
}

/// A body whose bytes count against the call's budget and which ends with
/// an error at the call's HTTP deadline or after `between` without data.
pub struct Metered<B> {
    inner: B,
    budget: Arc<CallBudget>,
    direction: Direction,
    deadline: Pin<Box<Sleep>>,
    between: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<B> Metered<B> {
    /// Meters `inner` in `direction`; `between` is the longest wait for the
    /// next frame (response bodies).
    pub fn new(
        inner: B,
        budget: Arc<CallBudget>,
        direction: Direction,
        between: Option<Duration>,
    ) -> Self {
        let deadline = Box::pin(tokio::time::sleep_until(budget.deadline));
        let between = between.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        Metered {
            inner,
            budget,
            direction,
            deadline,
            between,
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    let (counter, limit) = match this.direction {
                        Direction::Request => {
                            (&this.budget.request_bytes, this.budget.limits.request_bytes)
                        }
                        Direction::Response => (
                            &this.budget.response_bytes,
                            this.budget.limits.response_bytes,
                        ),
                    };
                    if counter.fetch_add(len, Ordering::Relaxed) + len > limit {
                        return Poll::Ready(Some(Err(match this.direction {
                            Direction::Request => Error::HttpRequestBodySize(Some(limit)),
                            Direction::Response => Error::HttpResponseBodySize(Some(limit)),
                        })));
                    }
                }
                if let Some((every, sleep)) = &mut this.between {
                    sleep.as_mut().reset(Instant::now() + *every);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
                }
                if let Some((_, sleep)) = &mut this.between
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
        }
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

    use super::*;

    fn limits(requests: u32, request_bytes: u64) -> HttpLimits {
        HttpLimits {
            requests,
            request_bytes,
            ..HttpLimits::default()
        }
    }

    #[test]
    fn requests_are_counted_per_call() {
        let call = CallBudget::new(limits(2, 1 << 20), Duration::from_secs(5));
        assert!(call.take_request());
        assert!(call.take_request());
        assert!(!call.take_request(), "the third of two");
        assert!(!call.take_request(), "and every one after it");
        let next = CallBudget::new(limits(2, 1 << 20), Duration::from_secs(5));
        assert!(next.take_request(), "the next call starts afresh");
    }

    #[tokio::test]
    async fn request_bodies_of_one_call_share_its_byte_budget() {
        let call = CallBudget::new(limits(16, 100), Duration::from_secs(5));
        let first = Metered::new(
            Full::new(Bytes::from(vec![b'a'; 60])),
            call.clone(),
            Direction::Request,
            None,
        );
        assert_eq!(first.collect().await.unwrap().to_bytes().len(), 60);
        // 60 + 60 is over 100: the second body fails, worded as wasi:http's
        // own body-size error the guest knows.
        let second = Metered::new(
            Full::new(Bytes::from(vec![b'b'; 60])),
            call.clone(),
            Direction::Request,
            None,
        );
        match second.collect().await {
            Err(Error::HttpRequestBodySize(Some(100))) => {}
            other => panic!("expected HttpRequestBodySize(100), got {other:?}"),
        }
        // Response bytes are a budget of their own.
        let response = Metered::new(
            Full::new(Bytes::from(vec![b'c'; 60])),
            call,
            Direction::Response,
            None,
        );
        assert!(response.collect().await.is_ok());
    }

    #[tokio::test]
    async fn the_deadline_bounds_every_wait() {
        let call = CallBudget::new(HttpLimits::default(), Duration::from_secs(1));
        let left = call.bound(None);
        assert!(left <= Duration::from_secs(1) - margin(Duration::from_secs(1)));
        assert_eq!(
            call.bound(Some(Duration::from_millis(10))),
            Duration::from_millis(10)
        );
        assert!(call.bound(Some(Duration::from_secs(60))) <= left);
    }
}
