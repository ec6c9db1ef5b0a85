//! The one error type of the service: every refusal is an `ApiError` with a stable code from API.md.

use actix_web::http::StatusCode;
use serde_json::Value;
use std::fmt;
use tokio_postgres::error::SqlState;

/// Stable error codes of API.md. The HTTP status is a function of the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidAmount,
    InvalidDate,
    InvalidIdNumber,
    InvalidPhone,
    InvalidImei,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    AlreadyExists,
    InvalidState,
    UnknownReference,
    AprAboveCap,
    LimitBelowExposure,
    Overpayment,
    PrincipalOutOfRange,
    UnsupportedTerm,
    RegionNotOpen,
    PartnerNotEligible,
    NoMatchingCreditLine,
    NoFundingBank,
    BusinessDateRegression,
    Unavailable,
    Internal,
    // v2, API.md §12-§13 (issue 16).
    HoldAmountMismatch,
    ImeiMismatch,
    ReturnWindowClosed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidAmount => "invalid_amount",
            InvalidDate => "invalid_date",
            InvalidIdNumber => "invalid_id_number",
            InvalidPhone => "invalid_phone",
            InvalidImei => "invalid_imei",
            PayloadTooLarge => "payload_too_large",
            RequestTimeout => "request_timeout",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            RateLimited => "rate_limited",
            IdempotencyKeyRequired => "idempotency_key_required",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyKeyInUse => "idempotency_key_in_use",
            AlreadyExists => "already_exists",
            InvalidState => "invalid_state",
            UnknownReference => "unknown_reference",
            AprAboveCap => "apr_above_cap",
            LimitBelowExposure => "limit_below_exposure",
            Overpayment => "overpayment",
            PrincipalOutOfRange => "principal_out_of_range",
            UnsupportedTerm => "unsupported_term",
            RegionNotOpen => "region_not_open",
            PartnerNotEligible => "partner_not_eligible",
            NoMatchingCreditLine => "no_matching_credit_line",
            NoFundingBank => "no_funding_bank",
            BusinessDateRegression => "business_date_regression",
            Unavailable => "unavailable",
            Internal => "internal",
            HoldAmountMismatch => "hold_amount_mismatch",
            ImeiMismatch => "imei_mismatch",
            ReturnWindowClosed => "return_window_closed",
        }
    }

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidAmount | InvalidDate | InvalidIdNumber | InvalidPhone | InvalidImei | IdempotencyKeyReused
            | UnknownReference | AprAboveCap | Overpayment | PrincipalOutOfRange | UnsupportedTerm | RegionNotOpen | PartnerNotEligible
            | NoMatchingCreditLine | NoFundingBank => StatusCode::UNPROCESSABLE_ENTITY,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            IdempotencyKeyRequired => StatusCode::BAD_REQUEST,
            IdempotencyKeyInUse | AlreadyExists | InvalidState | LimitBelowExposure | BusinessDateRegression => StatusCode::CONFLICT,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HoldAmountMismatch | ImeiMismatch | ReturnWindowClosed => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// A refusal with its code, a human message, the JSON path of the offending field and optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub details: Option<Value>,
    /// Seconds for `Retry-After` (rate limiting).
    pub retry_after_secs: Option<u64>,
    /// A transient conflict (serialization failure, deadlock, a concurrent insert): the whole
    /// transaction may simply run again.
    pub retryable: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), field: None, details: None, retry_after_secs: None, retryable: false }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).field(field)
    }
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such object")
    }
    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "this endpoint is not for your kind of principal")
    }
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "the database cannot be reached; retry later")
    }
    /// A transient conflict; the transaction runs again (answered 503 if it keeps happening).
    pub fn retry(message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Unavailable, message);
        e.retryable = true;
        e
    }
    /// The bare 500 body; private so that every 500 goes through [`ApiError::internal_because`]
    /// and says why in the log.
    fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    /// A 500 whose cause goes to the log (with the caller's file and line), while the client
    /// still sees only `internal` / "internal error": the cause may name tables, keys or data
    /// the caller has no business seeing. `context` says what failed ("Failed to …").
    #[track_caller]
    pub fn internal_because(context: impl fmt::Display, cause: impl fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        tracing::error!(error = %cause, at = %at, "{context}");
        Self::internal()
    }
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The API.md error body.
    pub fn body(&self, request_id: &str) -> Value {
        let mut error = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
            "field": self.field,
            "request_id": request_id,
        });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        serde_json::json!({ "error": error })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify_db_error(&e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool unavailable");
        ApiError::unavailable()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Maps a database error to the API: lost connections and timeouts are `503 unavailable`,
/// anything else is a bug (`500 internal`, logged).
pub fn classify_db_error(e: &tokio_postgres::Error) -> ApiError {
    if crate::db::is_retryable(e) {
        return ApiError::retry(format!("transient conflict: {e}"));
    }
    if retire_if_lost(e) {
        tracing::warn!(error = %db_cause(e), "database connection lost: the pool reconnects");
        return ApiError::unavailable();
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        // API.md §1's `503 unavailable`, with the cause named: a statement over its timeout is
        // not an unreachable database, and the client (or an operator) should know which it was.
        let busy = if *code == SqlState::QUERY_CANCELED {
            Some("the database did not answer within its statement timeout; retry later")
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            Some("the database could not take a lock within its timeout; retry later")
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            Some("the database has no connection free; retry later")
        } else {
            None
        };
        if let Some(message) = busy {
            tracing::warn!(error = %e, "database busy");
            return ApiError::new(ErrorCode::Unavailable, message);
        }
        if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *code == SqlState::UNTRANSLATABLE_CHARACTER {
            // Text PostgreSQL cannot hold (a NUL character) that got past the checks: the request's fault.
            return ApiError::new(ErrorCode::InvalidRequest, "the request holds text with a NUL character");
        }
        let context = format!("unexpected database error (SQLSTATE {}, constraint {:?})", code.code(), db.constraint());
        return ApiError::internal_because(context, e);
    }
    if e.to_string().contains("timed out") || e.to_string().contains("connect") {
        tracing::warn!(error = %e, "database unreachable");
        return ApiError::unavailable();
    }
    tracing::error!(error = %e, "database error");
    ApiError::new(ErrorCode::Unavailable, "the database answered unexpectedly; retry later")
}

/// What the log says of a database error: the driver's `Display` of a server error is only "db
/// error", so the server's message and SQLSTATE are added.
pub fn db_cause(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// SQLSTATEs that say this connection no longer reaches a writable primary: the server is a
/// standby now or read-only (`25006`, what a demoted primary answers), it terminated the session
/// (`57P01` admin shutdown or `pg_terminate_backend`, `57P02` crash of another backend), it is
/// starting or stopping (`57P03`), or the connection itself failed (class `08`).
const LOST_CONNECTION_STATES: [SqlState; 4] =
    [SqlState::READ_ONLY_SQL_TRANSACTION, SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW];

/// If `e` is a lost connection, the pool's connections opened before now are retired: the server
/// went away or stopped being the primary (a failover), so the pool reconnects, to the new primary
/// where the URL names several hosts with `target_session_attrs=read-write`. Every path that meets
/// a database error and keeps running (requests through [`classify_db_error`], background jobs)
/// calls this, or a job alone could keep meeting a demoted primary's sessions.
pub fn retire_if_lost(e: &tokio_postgres::Error) -> bool {
    let lost = is_lost_connection(e);
    if lost {
        crate::db::connection_lost();
    }
    lost
}

/// Is `e` a lost connection (see [`LOST_CONNECTION_STATES`]), or a closed or broken socket?
pub fn is_lost_connection(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => LOST_CONNECTION_STATES.contains(code) || code.code().starts_with("08"),
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes, to read the log line back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(f: impl FnOnce() -> ApiError) -> (ApiError, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let e = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (e, text)
    }

    #[test]
    fn internal_because_answers_the_unchanged_500_body() {
        let (e, _) = logged(|| ApiError::internal_because("Failed to read the stored pricing", "unknown pricing `bogus`"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.retryable);
        let body = e.body("req-1");
        let expected = serde_json::json!({
            "error": { "code": "internal", "message": "internal error", "field": null, "request_id": "req-1" }
        });
        assert_eq!(body, expected, "the cause must not reach the client");
    }

    #[test]
    fn internal_because_logs_its_context_cause_and_call_site() {
        let (_, log) = logged(|| ApiError::internal_because("Failed to read the stored pricing", "unknown pricing `bogus`"));
        assert!(log.contains("ERROR"), "{log}");
        assert!(log.contains("Failed to read the stored pricing"), "{log}");
        assert!(log.contains("unknown pricing `bogus`"), "{log}");
        assert!(log.contains("src/error.rs"), "the log names where the 500 came from: {log}");
    }
}
