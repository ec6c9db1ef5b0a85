//! Admin operations: ledger verification, the audit log, and the notice feed for every caller.

use super::{Page, State, encode_cursor, ok, query_param, resource};
use crate::auth::{Caller, PrincipalKind};
use crate::db::notices::{feed, seq_of_id};
use crate::error::{ApiError, ApiResult};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/admin/ledger/verify").route(web::get().to(verify)))
        .service(resource("/v1/admin/audit-log").route(web::get().to(audit_log)))
        .service(resource("/v1/notices").route(web::get().to(notices)));
}

async fn verify(state: State, caller: Caller) -> ApiResult<HttpResponse> {
    caller.principal.require(&[PrincipalKind::Admin])?;
    let mut client = state.pool.get().await?;
    let report = crate::service::verify::verify(&mut client).await?;
    ok(&report)
}

async fn audit_log(state: State, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    caller.principal.require(&[PrincipalKind::Admin])?;
    let page = Page::from_request(&req)?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT seq, at, actor, action, object_id, request_id FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&page.after_seq()?, &(page.limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > page.limit;
    let items: Vec<_> = rows.iter().take(page.limit as usize).collect();
    let next = if more { items.last().map(|r| encode_cursor(r.get(0))) } else { None };
    let data: Vec<_> = items
        .iter()
        .map(|r| {
            json!({ "at": r.get::<_, chrono::DateTime<chrono::Utc>>(1), "actor": r.get::<_, String>(2), "action": r.get::<_, String>(3),
                    "object_id": r.get::<_, String>(4), "request_id": r.get::<_, String>(5) })
        })
        .collect();
    ok(&json!({ "data": data, "next_cursor": next }))
}

/// `GET /v1/notices?after=<notice id>&limit=`: the caller's own notices in order (admin: all).
async fn notices(state: State, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let after = match query_param(&req, "after") {
        None => 0,
        Some(id) => seq_of_id(&id).ok_or_else(|| ApiError::invalid("after", "not a notice id"))?,
    };
    let after = match &page.cursor {
        Some(_) => page.after_seq()?,
        None => after,
    };
    let recipient = match caller.principal.kind() {
        PrincipalKind::Admin => None,
        kind => Some((kind.as_str(), caller.principal.id().unwrap_or_default())),
    };
    let client = state.pool.get().await?;
    let mut items = feed(&**client, recipient, after, page.limit + 1).await?;
    let more = items.len() as i64 > page.limit;
    items.truncate(page.limit as usize);
    let next = if more { items.last().map(|n| encode_cursor(n.seq)) } else { None };
    ok(&json!({ "data": items, "next_cursor": next }))
}
