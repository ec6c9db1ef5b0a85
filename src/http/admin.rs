//! Admin operations: ledger verification, the audit log, notice delivery, and the notice feed for every caller.

use super::{Page, State, encode_cursor, json as json_response, ok, page_of, query_param};
use crate::auth::{Caller, PrincipalKind};
use crate::db::notices::seq_of_id;
use crate::error::{ApiError, ApiResult};
use crate::service::notices as notices_svc;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

/// `GET /v1/admin/notices?state=&recipient=<kind>:<id>&limit=&cursor=`: with delivery state, in creation order.
pub(super) async fn admin_notices(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let delivery_state = query_param(&req, "state");
    if let Some(s) = &delivery_state
        && !notices_svc::STATES.contains(&s.as_str())
    {
        return Err(ApiError::invalid("state", "state is pending, delivered, dead or pull_only"));
    }
    let recipient = query_param(&req, "recipient");
    let parsed = match &recipient {
        None => None,
        Some(r) => Some(
            notices_svc::parse_recipient(r)
                .ok_or_else(|| ApiError::invalid("recipient", "recipient is <kind>:<id>, kind bank, provider, store or partner"))?,
        ),
    };
    let items = notices_svc::list(&state, delivery_state.as_deref(), parsed, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |n| n.notice.seq, |n| n))
}

pub(super) async fn admin_notice(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ok(&notices_svc::get(&state, &path).await?)
}

/// `POST /v1/admin/notices/{id}/redeliver` → 202: pending again, attempts reset, due now.
pub(super) async fn redeliver(state: State, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let notice = notices_svc::redeliver(&state, &path).await?;
    Ok(json_response(StatusCode::ACCEPTED, &notice))
}

pub(super) async fn verify(state: State) -> ApiResult<HttpResponse> {
    let mut client = state.pool.get().await?;
    let report = crate::service::verify::verify(&mut client).await?;
    ok(&report)
}

pub(super) async fn audit_log(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let items = crate::service::audit::page(&state, page.after_seq()?, page.limit + 1).await?;
    Ok(page_of(items, page.limit, |e| e.seq, |e| e))
}

/// `GET /v1/notices?after=<notice id>&limit=`: the caller's own notices in order (admin: all).
/// The order is the notices' positions, given after commit (so a page never skips a notice that
/// commits late); cursors carry positions.
pub(super) async fn notices(state: State, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let after = match query_param(&req, "after") {
        None => None,
        Some(id) => Some(seq_of_id(&id).ok_or_else(|| ApiError::invalid("after", "not a notice id"))?),
    };
    let cursor = match &page.cursor {
        Some(_) => Some(page.after_seq()?),
        None => None,
    };
    let recipient = match caller.principal.kind() {
        PrincipalKind::Admin => None,
        kind => Some((kind.as_str(), caller.principal.id().unwrap_or_default())),
    };
    let start = match (cursor, after) {
        (Some(pos), _) => notices_svc::FeedStart::Cursor(pos),
        (None, Some(seq)) => notices_svc::FeedStart::AfterNotice(seq),
        (None, None) => notices_svc::FeedStart::Start,
    };
    let mut items = notices_svc::feed(&state, recipient, start, page.limit + 1).await?;
    let more = items.len() as i64 > page.limit;
    items.truncate(page.limit as usize);
    let next = if more { items.last().and_then(|n| n.pos).map(encode_cursor) } else { None };
    ok(&json!({ "data": items, "next_cursor": next }))
}
