//! What every request passes before the inbound policy sees it: request-line and header
//! checks Envoy's codecs make, the XFCC header, and the connection's activity count.
//!
//! - **Method case.** Envoy's HTTP/1 codec accepts only upper-case method tokens and answers
//!   anything else with 400 before any filter runs (http-parser's method table; balsa's
//!   `BalsaParser` with `allow_custom_methods` off, `source/common/http/http1/balsa_parser.cc`),
//!   and its HTTP/2 header validation does the same for `:method`. Without this,
//!   `delete /x` would slip past an AuthorizationPolicy rule on `DELETE`, since methods are
//!   compared case-sensitively, as in Envoy's RBAC filter.
//! - **Host.** RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a
//!   `Host`, and to any request with more than one `Host` or an invalid one.
//! - **Underscores.** A header name with `_` is served, refused with 400 or dropped, as
//!   [`HeadersWithUnderscores`] says (Envoy's `headers_with_underscores_action`, checked in
//!   its codecs, `source/common/http/header_utility.cc` `checkHeaderNameForUnderscores`).
//! - **XFCC**: see [`super::xfcc`].
//! - **Activity**: each request is in flight (for the idle timeout and the high-water
//!   eviction, [`super::registry`]) until its response body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HOST;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::options::HeadersWithUnderscores;
use super::registry::{Active, ConnState};
use super::xfcc;
use crate::reply::{GrpcCode, LocalReply, is_grpc};
use crate::tls::BoxError;

/// Counter of requests the guard answered with 400 itself, by `reason`.
pub(super) const REQUESTS_REJECTED: &str = "mesh_inbound_requests_rejected_total";

/// The per-connection request guard; see the [module docs](self).
#[derive(Clone, Debug)]
pub(super) struct Guard<S> {
    inner: S,
    conn: Arc<ConnState>,
    /// Our XFCC element for this connection's verified peer; `None` on plaintext.
    xfcc: Option<HeaderValue>,
    underscores: HeadersWithUnderscores,
}

impl<S> Guard<S> {
    pub(super) fn new(
        inner: S,
        conn: Arc<ConnState>,
        xfcc: Option<HeaderValue>,
        underscores: HeadersWithUnderscores,
    ) -> Self {
        Self {
            inner,
            conn,
            xfcc,
            underscores,
        }
    }
}

/// Why a request was answered with 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Malformed {
    Method,
    MissingHost,
    DuplicateHost,
    InvalidHost,
    Underscore,
}

impl Malformed {
    /// Envoy-style response code details, also the metric's `reason` label.
    fn details(self) -> &'static str {
        match self {
            Self::Method => "invalid_method",
            Self::MissingHost => "missing_host_header",
            Self::DuplicateHost => "duplicate_host_header",
            Self::InvalidHost => "invalid_host_header",
            Self::Underscore => "unexpected_underscore",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Method => "Bad Request: the method is not an upper-case token",
            Self::MissingHost => "Bad Request: HTTP/1.1 request without a Host header",
            Self::DuplicateHost => "Bad Request: more than one Host header",
            Self::InvalidHost => "Bad Request: invalid Host header",
            Self::Underscore => "Bad Request: a header name contains an underscore",
        }
    }
}

/// Applies `action` to header names with an underscore: `Err` when the request is refused.
fn underscores<B>(req: &mut Request<B>, action: HeadersWithUnderscores) -> Result<(), Malformed> {
    if action == HeadersWithUnderscores::Allow {
        return Ok(());
    }
    let names: Vec<HeaderName> = req
        .headers()
        .keys()
        .filter(|name| name.as_str().contains('_'))
        .cloned()
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    if action == HeadersWithUnderscores::RejectRequest {
        return Err(Malformed::Underscore);
    }
    metrics::counter!(HEADERS_DROPPED, "reason" => "underscore").increment(names.len() as u64);
    for name in names {
        req.headers_mut().remove(name);
    }
    Ok(())
}

/// Counter of request headers the guard removed, by `reason`.
pub(super) const HEADERS_DROPPED: &str = "mesh_inbound_request_headers_dropped_total";

fn check<B>(req: &Request<B>) -> Result<(), Malformed> {
    if req
        .method()
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
    {
        return Err(Malformed::Method);
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(Malformed::DuplicateHost),
        (None, _) if req.version() == Version::HTTP_11 => Err(Malformed::MissingHost),
        (Some(host), None) if Authority::try_from(host.as_bytes()).is_err() => {
            Err(Malformed::InvalidHost)
        }
        _ => Ok(()),
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Guard<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<GuardBody<ResB>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let active = self.conn.begin();
        if let Err(why) = check(&req).and_then(|()| underscores(&mut req, self.underscores)) {
            metrics::counter!(REQUESTS_REJECTED, "reason" => why.details()).increment(1);
            let reply = LocalReply {
                status: StatusCode::BAD_REQUEST,
                grpc_status: GrpcCode::Internal as u16,
                message: why.message().to_owned(),
                flag: None,
                details: why.details(),
            };
            let response = reply.into_response_with(is_grpc(req.headers()), |bytes| GuardBody {
                inner: Either::Local {
                    body: Full::new(bytes),
                },
                _active: active,
            });
            return GuardFuture::Rejected {
                response: Some(response),
            };
        }
        xfcc::apply(req.headers_mut(), self.xfcc.as_ref());
        GuardFuture::Inner {
            future: self.inner.call(req),
            active: Some(active),
        }
    }
}

pin_project! {
    /// [`Guard`]'s response future.
    #[project = GuardFutureProj]
    pub(super) enum GuardFuture<F> {
        Rejected { response: Option<Response<GuardBody<()>>> },
        Inner { #[pin] future: F, active: Option<Active> },
    }
}

impl<F, B, E> std::future::Future for GuardFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardFutureProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("GuardFuture polled after completion");
                Poll::Ready(Ok(response.map(GuardBody::local)))
            }
            GuardFutureProj::Inner { future, active } => {
                let response = std::task::ready!(future.poll(cx))?;
                let active = active.take().expect("GuardFuture polled after completion");
                Poll::Ready(Ok(response.map(|inner| GuardBody {
                    inner: Either::App { body: inner },
                    _active: active,
                })))
            }
        }
    }
}

pin_project! {
    /// A response body: the application's, or the guard's own 400; the request counts as in
    /// flight until it is dropped.
    pub(super) struct GuardBody<B> {
        #[pin]
        inner: Either<B>,
        _active: Active,
    }
}

pin_project! {
    #[project = EitherProj]
    enum Either<B> {
        App { #[pin] body: B },
        Local { #[pin] body: Full<Bytes> },
    }
}

impl GuardBody<()> {
    /// Re-types a local reply's body (which never holds an application body).
    fn local<B>(self) -> GuardBody<B> {
        let body = match self.inner {
            Either::Local { body } => body,
            Either::App { body: () } => Full::new(Bytes::new()),
        };
        GuardBody {
            inner: Either::Local { body },
            _active: self._active,
        }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            EitherProj::App { body } => body.poll_frame(cx).map_err(Into::into),
            EitherProj::Local { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Either::App { body } => body.is_end_stream(),
            Either::Local { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Either::App { body } => body.size_hint(),
            Either::Local { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/x").version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).expect("valid request")
    }

    #[test]
    fn methods_must_be_upper_case() {
        assert_eq!(check(&req("DELETE", Version::HTTP_11, &["a"])), Ok(()));
        assert_eq!(check(&req("M-SEARCH", Version::HTTP_11, &["a"])), Ok(()));
        for m in ["delete", "Delete", "GeT"] {
            assert_eq!(
                check(&req(m, Version::HTTP_11, &["a"])),
                Err(Malformed::Method)
            );
        }
    }

    #[test]
    fn headers_with_underscores_are_served_refused_or_dropped() {
        let with = || {
            let mut r = req("GET", Version::HTTP_11, &["a"]);
            r.headers_mut()
                .insert("x_user", HeaderValue::from_static("admin"));
            r.headers_mut()
                .insert("x-user", HeaderValue::from_static("guest"));
            r
        };
        let mut r = with();
        assert_eq!(underscores(&mut r, HeadersWithUnderscores::Allow), Ok(()));
        assert_eq!(r.headers().len(), 3);
        let mut r = with();
        assert_eq!(
            underscores(&mut r, HeadersWithUnderscores::RejectRequest),
            Err(Malformed::Underscore)
        );
        let mut r = with();
        assert_eq!(
            underscores(&mut r, HeadersWithUnderscores::DropHeader),
            Ok(())
        );
        assert!(r.headers().get("x_user").is_none());
        assert_eq!(r.headers()["x-user"], "guest");
        // Without an underscore nothing changes.
        let mut r = req("GET", Version::HTTP_11, &["a"]);
        assert_eq!(
            underscores(&mut r, HeadersWithUnderscores::RejectRequest),
            Ok(())
        );
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        assert_eq!(
            check(&req("GET", Version::HTTP_11, &[])),
            Err(Malformed::MissingHost)
        );
        assert_eq!(
            check(&req("GET", Version::HTTP_11, &["a", "b"])),
            Err(Malformed::DuplicateHost)
        );
        assert_eq!(
            check(&req("GET", Version::HTTP_2, &["a", "a"])),
            Err(Malformed::DuplicateHost)
        );
        assert_eq!(
            check(&req("GET", Version::HTTP_11, &["a b"])),
            Err(Malformed::InvalidHost)
        );
        // HTTP/1.0 and HTTP/2 (which carries :authority) need no Host.
        assert_eq!(check(&req("GET", Version::HTTP_10, &[])), Ok(()));
        assert_eq!(check(&req("GET", Version::HTTP_2, &[])), Ok(()));
        assert_eq!(
            check(&req("GET", Version::HTTP_11, &["reviews:9080"])),
            Ok(())
        );
    }
}
