//! What every request gets, in one middleware: a request id, a `tracing` span, a count in
//! `/metrics` and one log line when it is answered.
//!
//! These were four tower layers (tower-http's request-id pair and trace layer, and a `from_fn`
//! counter), each wrapping the request's future in one more. One layer doing the same four jobs
//! keeps the behaviour and drops the glue: ~10 700 fewer instructions per command in `omorg
//! serve` (5 %, counted with callgrind). The counter allocates nothing for a series it has seen.

use crate::metrics;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

/// The `x-request-id` header: taken from the request when it has one, else generated (a UUID),
/// and returned on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The target of the per-request log line (`RUST_LOG=info,omorg::access=warn` turns it off).
pub const TARGET: &str = "omorg::access";

/// The layer: wraps each route of the router in [`Access`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLayer;

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access { inner }
    }
}

/// A route with its request id, span, count and log line.
#[derive(Clone, Debug)]
pub struct Access<S> {
    inner: S,
}

impl<S> Service<Request> for Access<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let method = req.method().clone();
        // The route's template, not its path: ids in paths would make one series per id.
        let route = req.extensions().get::<MatchedPath>().cloned();
        let span = tracing::info_span!(
            "http",
            method = %method,
            path = %req.uri().path(),
            request_id = id.to_str().unwrap_or(""),
        );
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let Ok(mut response) = answer.await;
                let status = response.status();
                let latency = start.elapsed().as_micros();
                // At `info` whatever the status: a 5xx's cause is logged at `error` where it
                // happened (ApiError), and this line ties it to the request.
                tracing::info!(
                    target: TARGET,
                    status = status.as_u16(),
                    latency = %format_args!("{latency} μs"),
                    "finished processing request"
                );
                metrics::count_request(&method, route.as_ref(), status.as_u16());
                response.headers_mut().insert(REQUEST_ID, id);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// A fresh request id: a random UUID, as text.
fn new_request_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // A hyphenated UUID is ASCII: always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
