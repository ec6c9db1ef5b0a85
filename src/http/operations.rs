//! The operations API (API.md §16), for the admin: portfolio, aging, end-of-day runs, search and
//! bulk redelivery. Each handler reads its input and makes one service call.

use super::body::parse_object;
use super::requests::ops::{AgingQuery, RedeliverRequest, SearchQuery};
use super::{Body, Page, State, encode_cursor, json, ok, query_param};
use crate::error::ApiResult;
use crate::service::ops as svc;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json as value;

pub(super) async fn portfolio(state: State) -> ApiResult<HttpResponse> {
    ok(&svc::portfolio(&state).await?)
}

pub(super) async fn aging(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = AgingQuery::read(query_param(&req, "as_of").as_deref(), query_param(&req, "bank_id").as_deref())?;
    ok(&svc::aging(&state, query.as_of, query.bank_id.as_deref()).await?)
}

/// Newest first; the cursor is the last run's sequence number, as the orders' list.
pub(super) async fn eod_runs(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = Page::from_request(&req)?;
    let mut runs = svc::eod_runs(&state, page.after_seq()?, page.limit + 1).await?;
    let more = runs.len() as i64 > page.limit;
    runs.truncate(page.limit as usize);
    let next = if more { runs.last().map(|r| encode_cursor(r.seq)) } else { None };
    ok(&value!({ "data": runs, "next_cursor": next }))
}

pub(super) async fn search(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = SearchQuery::read(query_param(&req, "q").as_deref())?;
    ok(&svc::search(&state, &query.q).await?)
}

pub(super) async fn redeliver(state: State, body: Body) -> ApiResult<HttpResponse> {
    let request = RedeliverRequest::read(&parse_object(&body.0)?)?;
    Ok(json(StatusCode::ACCEPTED, &svc::redeliver_dead(&state, &request.filter()).await?))
}
