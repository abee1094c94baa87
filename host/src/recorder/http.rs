//! HTTP under the recorder: the exchanges of a recorded call captured as
//! their bodies stream (never buffered ahead of the guest), and a replayed
//! call's requests answered from the recording without a connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::capture::Recorder;
use super::format::Exchange;
use super::replay::Replayer;

/// One exchange being recorded; cheap to clone into the send future.
#[derive(Clone)]
pub struct ExchangeTap {
    recorder: Arc<Recorder>,
    index: usize,
}

impl ExchangeTap {
    /// Starts recording `request` (its head now, its body as it is sent);
    /// None once the recorder is full.
    pub fn start(
        recorder: &Arc<Recorder>,
        request: &mut http::Request<WasiBody>,
    ) -> Option<ExchangeTap> {
        let index = recorder.http_request(
            request.method().as_str(),
            &request.uri().to_string(),
            request.headers(),
        )?;
        let tap = ExchangeTap {
            recorder: recorder.clone(),
            index,
        };
        let body = std::mem::replace(request.body_mut(), empty());
        *request.body_mut() = Tapped {
            inner: body,
            tap: tap.clone(),
            side: Side::Request,
        }
        .boxed_unsync();
        Some(tap)
    }

    /// A granted secret value the host is about to send.
    pub fn secret(&self, value: &[u8]) {
        self.recorder.secret(value);
    }

    /// Records the response head, and its body as the guest reads it.
    pub fn response(&self, response: http::Response<WasiBody>) -> http::Response<WasiBody> {
        self.recorder
            .response_head(self.index, response.status().as_u16(), response.headers());
        let tap = self.clone();
        response.map(|inner| {
            Tapped {
                inner,
                tap,
                side: Side::Response,
            }
            .boxed_unsync()
        })
    }

    /// Records how the request failed.
    pub fn error(&self, error: &Error) {
        let text = format!("{error:?}");
        self.recorder
            .with_exchange(self.index, text.len(), |draft| draft.error = Some(text));
    }
}

fn empty() -> WasiBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// A body passing through, its data frames copied into the recording.
struct Tapped {
    inner: WasiBody,
    tap: ExchangeTap,
    side: Side,
}

impl http_body::Body for Tapped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let side = self.side;
                    self.tap.recorder.with_exchange(
                        self.tap.index,
                        data.len(),
                        |draft| match side {
                            Side::Request => draft.request_body.extend_from_slice(data),
                            Side::Response => draft.response_body.extend_from_slice(data),
                        },
                    );
                }
            }
            Poll::Ready(Some(Err(error))) => {
                if let Side::Response = self.side {
                    let text = format!("{error:?}");
                    self.tap
                        .recorder
                        .with_exchange(self.tap.index, text.len(), |draft| {
                            draft.body_error = Some(text)
                        });
                }
            }
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

/// What a send hook's future ends with: the response and its connection's
/// driver, or the error.
type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

type SendFuture = Box<dyn Future<Output = Sent> + Send>;

/// The `wasi:http` hooks of a replayed call: every request answered from
/// the recording, in order; nothing leaves the host.
pub struct ReplayHttp(pub Arc<Replayer>);

impl WasiHttpHooks for ReplayHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let answer = self
            .0
            .http(request.method().as_str(), &request.uri().to_string());
        Box::new(async move {
            // The guest's body is drained, as a server would, so that a
            // guest writing it after sending is not left blocked; each
            // frame is dropped as it comes, so an endless body costs no
            // memory (the call's deadline ends it).
            let mut body = request.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            let exchange = answer.map_err(|divergence| {
                tracing::warn!("{divergence}");
                Error::HttpRequestDenied
            })?;
            respond(exchange)
        })
    }
}

fn respond(exchange: Exchange) -> Sent {
    let Some(recorded) = exchange.response else {
        return Err(error_named(exchange.error.as_deref().unwrap_or("")));
    };
    let body = Bytes::from(recorded.body.bytes().to_vec());
    let body: WasiBody = match recorded.body_error {
        None => http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
        Some(error) => {
            let frames = vec![Ok(Frame::data(body)), Err(error_named(&error))];
            http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
        }
    };
    let mut response = http::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(recorded.status).map_err(|_| Error::HttpProtocolError)?;
    for (name, value) in recorded.headers {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::try_from(name),
            http::header::HeaderValue::try_from(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// The error a recorded error's name stands for; one without a payload
/// comes back as itself, any other as an internal error saying what it was.
fn error_named(recorded: &str) -> Error {
    match recorded {
        "DnsTimeout" => Error::DnsTimeout,
        "DestinationNotFound" => Error::DestinationNotFound,
        "DestinationUnavailable" => Error::DestinationUnavailable,
        "DestinationIpProhibited" => Error::DestinationIpProhibited,
        "ConnectionRefused" => Error::ConnectionRefused,
        "ConnectionTerminated" => Error::ConnectionTerminated,
        "ConnectionTimeout" => Error::ConnectionTimeout,
        "ConnectionReadTimeout" => Error::ConnectionReadTimeout,
        "ConnectionWriteTimeout" => Error::ConnectionWriteTimeout,
        "ConnectionLimitReached" => Error::ConnectionLimitReached,
        "TlsProtocolError" => Error::TlsProtocolError,
        "TlsCertificateError" => Error::TlsCertificateError,
        "HttpRequestDenied" => Error::HttpRequestDenied,
        "HttpRequestUriInvalid" => Error::HttpRequestUriInvalid,
        "HttpResponseIncomplete" => Error::HttpResponseIncomplete,
        "HttpResponseTimeout" => Error::HttpResponseTimeout,
        "HttpProtocolError" => Error::HttpProtocolError,
        "" => Error::InternalError(Some("the recording holds no answer".to_owned())),
        other => Error::InternalError(Some(other.to_owned())),
    }
}
