//! Reading request bodies: every read bounded in size (`413 payload_too_large`) and in time
//! (`408 request_timeout`), and a body left unread closing its connection.
//!
//! The outermost middleware puts the connection's payload behind a [`Tracked`] handle. Actix-http
//! drains a chunked body that nobody reads, to keep the connection alive, with no limit in time:
//! a caller that stalls such a body (one refused with 401, 413 or 408) would hold the connection
//! for ever. While the payload is still held when the answer is written, actix instead answers
//! `Connection: close` and closes the connection (after `client_disconnect_timeout`, so that the
//! client reads the answer first), so the handle is kept inside the answer's body until then.

use crate::config::ServerSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::{HttpMessage, web};
use futures_util::{Stream, StreamExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// How much of a body may be read, and until when: set once per request by the request context.
#[derive(Clone, Copy, Debug)]
pub struct BodyBudget {
    pub limit: usize,
    pub deadline: Instant,
}

impl BodyBudget {
    /// The configured budget of a request whose head arrived at `head_at`.
    pub fn new(server: &ServerSettings, head_at: Instant) -> BodyBudget {
        BodyBudget { limit: server.body_limit_bytes, deadline: head_at + Duration::from_millis(server.body_read_timeout_ms) }
    }
}

/// Reads a whole body, refusing it as soon as it goes over the limit (`413`) or when it has not
/// arrived in full by the deadline (`408`): a stalled or short body is the client's fault, not a
/// database outage, and it never holds a worker longer than the budget says.
pub async fn read_body(mut payload: Payload, budget: BodyBudget) -> ApiResult<web::Bytes> {
    let read = async {
        let mut buf = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(unreadable)?;
            if buf.len() + chunk.len() > budget.limit {
                return Err(ApiError::new(ErrorCode::PayloadTooLarge, "the body is over the size limit"));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout_at(budget.deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(ErrorCode::RequestTimeout, "the body did not arrive in full in time (server.body_read_timeout_ms)")),
    }
}

/// Counts a body's bytes without keeping them, until it ends, goes over `limit` (answers `true`),
/// fails, or `deadline` passes: what a caller without a valid key may cost (no buffer, a bounded
/// wait) so that its over-limit body still answers 413 before its 401 (API.md §1).
pub async fn exceeds_limit(mut payload: Payload, limit: usize, deadline: Instant) -> bool {
    let count = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = payload.next().await {
            seen = seen.saturating_add(chunk.len());
            if seen > limit {
                return true;
            }
        }
        false
    };
    tokio::time::timeout_at(deadline, count).await.unwrap_or(false)
}

fn unreadable(e: PayloadError) -> ApiError {
    match e {
        // Shorter than its Content-Length with the client's side closed, or chunks that broke off.
        PayloadError::Incomplete(_) => ApiError::invalid("$", "the body ended before it was complete"),
        _ => ApiError::invalid("$", "the body could not be read"),
    }
}

/// The connection's payload, shared by the handler that reads it and the request context.
pub struct Tracked(Rc<RefCell<Shared>>);

struct Shared {
    payload: Payload,
    /// Read to its end: nothing left for actix to drain.
    done: bool,
}

/// Puts the request's payload behind a handle (`None` for a request without a body).
pub fn track(req: &mut ServiceRequest) -> Option<Tracked> {
    let payload = req.take_payload();
    if matches!(payload, Payload::None) {
        return None;
    }
    let shared = Rc::new(RefCell::new(Shared { payload, done: false }));
    let reader: Pin<Box<dyn Stream<Item = Result<web::Bytes, PayloadError>>>> = Box::pin(Reader(shared.clone()));
    req.set_payload(Payload::from(reader));
    Some(Tracked(shared))
}

impl Tracked {
    /// The answer, holding the payload until its last byte is written when the body was not read
    /// to its end (see the module's comment).
    pub fn hold_until_answered(self, res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
        if self.0.borrow().done {
            return res;
        }
        res.map_body(|_, body| BoxBody::new(Holding { body, _payload: self }))
    }
}

struct Reader(Rc<RefCell<Shared>>);

impl Stream for Reader {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut shared = self.0.borrow_mut();
        let next = shared.payload.poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            shared.done = true;
        }
        next
    }
}

/// An answer's body that keeps an unread payload alive while it is written.
struct Holding {
    body: BoxBody,
    _payload: Tracked,
}

impl MessageBody for Holding {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
