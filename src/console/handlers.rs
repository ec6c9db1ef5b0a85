//! The console's handlers: check the session (and on a form, its CSRF token), make the one
//! service call the API makes for the same thing, render. No session: to the sign-in page.

use super::pages::{self, Frame, NoticeFilter};
use super::session::{COOKIE, LIFETIME_HOURS, Session, Signer};
use super::text::Lang;
use crate::domain::eod_run::EodTrigger;
use crate::error::ApiError;
use crate::http::{State, decode_cursor, encode_cursor, request_id};
use crate::service::{self, ops};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;
use serde::Deserialize;

const LANG_COOKIE: &str = "cp_lang";

fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    let header = req.headers().get(header::COOKIE)?.to_str().ok()?;
    header.split(';').map(str::trim).find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
}

fn lang(req: &HttpRequest) -> Lang {
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Lang::pick(cookie(req, LANG_COOKIE), accept)
}

fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// A service's refusal or failure as a page, its cause logged by the error's own conversion.
fn refused(req: &HttpRequest, e: &ApiError) -> HttpResponse {
    html(e.status(), pages::refused(lang(req), &e.message))
}

/// `; Secure` where the request came over HTTPS (directly or as a proxy in front says).
fn secure(req: &HttpRequest) -> &'static str {
    if req.connection_info().scheme() == "https" { "; Secure" } else { "" }
}

/// The session of a signed-in admin whose key is still valid, or the way to the sign-in page.
pub(super) struct Signed {
    session: Session,
    lang: Lang,
    csrf: String,
    path: String,
}

impl Signed {
    fn frame(&self) -> Frame<'_> {
        Frame { lang: self.lang, csrf: &self.csrf, path: &self.path }
    }
}

async fn signed_in(state: &State, req: &HttpRequest) -> Result<Signed, HttpResponse> {
    let to_sign_in = || see_other("/console/sign-in");
    let session = cookie(req, COOKIE).and_then(|c| Session::open(c, &state.console_key, state.clock.now())).ok_or_else(to_sign_in)?;
    let valid = match &session.signer {
        Signer::Key(id) => ops::admin_key_active(state, id).await.map_err(|e| refused(req, &e))?,
        Signer::Bootstrap(_) => {
            let admin_key = state.settings.auth.admin_key.expose();
            !admin_key.is_empty() && Signer::bootstrap(admin_key) == session.signer
        }
    };
    if !valid {
        return Err(to_sign_in());
    }
    let csrf = session.csrf(&state.console_key);
    let path = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    Ok(Signed { session, lang: lang(req), csrf, path: url::form_urlencoded::byte_serialize(path.as_bytes()).collect() })
}

/// A state-changing form: signed in, and carrying this session's CSRF token; else `403` with
/// nothing changed.
async fn form_signed_in(state: &State, req: &HttpRequest, token: &str) -> Result<Signed, HttpResponse> {
    let signed = signed_in(state, req).await?;
    if !signed.session.csrf_ok(&state.console_key, token) {
        tracing::warn!(actor = %signed.session.signer.actor(), path = req.path(), "console form refused: CSRF token missing or wrong");
        return Err(html(StatusCode::FORBIDDEN, pages::refused(signed.lang, signed.lang.t("csrf"))));
    }
    Ok(signed)
}

/// Audits an action; a failure to audit is the action's failure to report (it already happened).
async fn audit(state: &State, req: &HttpRequest, signer: &Signer, action: &str, object: &str) -> Result<(), HttpResponse> {
    ops::audit(state, &signer.actor(), action, object, &request_id(req)).await.map_err(|e| refused(req, &e))
}

pub(super) async fn root() -> HttpResponse {
    see_other("/console/overview")
}

pub(super) async fn sign_in_page(req: HttpRequest) -> HttpResponse {
    html(StatusCode::OK, pages::sign_in(lang(&req), false))
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    key: String,
}

/// An admin key signs in: a session cookie (`HttpOnly; SameSite=Strict`, 8 hours). Any other
/// key is refused with the form again.
pub(super) async fn sign_in(state: State, req: HttpRequest, form: web::Form<SignInForm>) -> HttpResponse {
    let found = match ops::admin_key(&state, form.key.trim()).await {
        Ok(found) => found,
        Err(e) => return refused(&req, &e),
    };
    let Some(key) = found else { return html(StatusCode::FORBIDDEN, pages::sign_in(lang(&req), true)) };
    let signer = match key {
        ops::AdminKey::Bootstrap => Signer::bootstrap(state.settings.auth.admin_key.expose()),
        ops::AdminKey::Key(id) => Signer::Key(id),
    };
    if let Err(r) = audit(&state, &req, &signer, "console.sign_in", &signer.actor()).await {
        return r;
    }
    let session = Session::start(signer, state.clock.now());
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.seal(&state.console_key),
        LIFETIME_HOURS * 3600,
        secure(&req)
    );
    HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/overview")).insert_header((header::SET_COOKIE, cookie)).finish()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn sign_out(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let signed = match form_signed_in(&state, &req, &form.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = audit(&state, &req, &signed.session.signer, "console.sign_out", &signed.session.signer.actor()).await {
        return r;
    }
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}", secure(&req));
    HttpResponse::SeeOther().insert_header((header::LOCATION, "/console/sign-in")).insert_header((header::SET_COOKIE, gone)).finish()
}

#[derive(Deserialize)]
pub(super) struct LangQuery {
    to: String,
    back: Option<String>,
}

/// The language switch: a cookie, then back to the page (a console path only).
pub(super) async fn switch_lang(req: HttpRequest, q: web::Query<LangQuery>) -> HttpResponse {
    let to = if q.to == "en" { "en" } else { "zh" };
    let back = q.back.as_deref().filter(|b| b.starts_with("/console/") && !b.starts_with("//")).unwrap_or("/console/overview");
    let cookie = format!("{LANG_COOKIE}={to}; Path=/console; SameSite=Strict; Max-Age=31536000{}", secure(&req));
    HttpResponse::SeeOther().insert_header((header::LOCATION, back)).insert_header((header::SET_COOKIE, cookie)).finish()
}

/// Unwraps a signed-in check or a service answer inside a handler returning `HttpResponse`.
macro_rules! attempt {
    ($req:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return refused($req, &e),
        }
    };
}

macro_rules! signed {
    ($e:expr) => {
        match $e.await {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

pub(super) async fn overview(state: State, req: HttpRequest) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let portfolio = attempt!(&req, ops::portfolio(&state).await);
    let runs = attempt!(&req, ops::eod_runs(&state, 0, 50).await);
    // Today's run closes yesterday; yesterday's closed the day before.
    let today = state.clock.today();
    let closings: Vec<_> = [1, 2]
        .into_iter()
        .map(|back| today - chrono::Duration::days(back))
        .map(|d| (d, runs.iter().find(|r| r.business_date == d)))
        .collect();
    html(StatusCode::OK, pages::overview(&s.frame(), &portfolio, &closings))
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
}

pub(super) async fn orders(state: State, req: HttpRequest, q: web::Query<SearchQuery>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let text = q.q.as_deref().unwrap_or("").trim().to_string();
    let found = if text.is_empty() {
        None
    } else {
        let query = attempt!(&req, crate::http::requests::ops::SearchQuery::read(Some(&text)));
        Some(attempt!(&req, ops::search(&state, &query.q).await).data)
    };
    let detail = match found.as_deref() {
        Some([one]) => attempt!(&req, ops::order_detail(&state, &one.id).await),
        _ => None,
    };
    html(StatusCode::OK, pages::orders(&s.frame(), &text, found.as_deref(), detail.as_ref()))
}

/// One order in full (`/console/orders/{id}`), linked from the search's list.
pub(super) async fn order(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    match attempt!(&req, ops::order_detail(&state, &id).await) {
        Some(d) => html(StatusCode::OK, super::detail::order_page(&s.frame(), &d)),
        None => html(StatusCode::NOT_FOUND, pages::refused(s.lang, s.lang.t("no_results"))),
    }
}

/// One notice with its attempt history (`/console/notices/{id}`).
pub(super) async fn notice(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    match attempt!(&req, ops::notice_history(&state, &id).await) {
        Some(h) => html(StatusCode::OK, super::detail::notice_page(&s.frame(), &h)),
        None => html(StatusCode::NOT_FOUND, pages::refused(s.lang, s.lang.t("no_notice"))),
    }
}

#[derive(Deserialize)]
pub(super) struct NoticesQuery {
    state: Option<String>,
    recipient: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

pub(super) async fn notices(state: State, req: HttpRequest, q: web::Query<NoticesQuery>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let delivery = q.state.as_deref().filter(|v| service::notices::STATES.contains(v));
    let recipient = q.recipient.as_deref().filter(|r| !r.is_empty()).and_then(service::notices::parse_recipient);
    let after = q.cursor.as_deref().and_then(decode_cursor).unwrap_or(0);
    let mut list = attempt!(&req, service::notices::list(&state, delivery, recipient, after, 51).await);
    let next = (list.len() > 50).then(|| encode_cursor(list[49].notice.seq));
    list.truncate(50);
    let message = q.done.as_deref().map(|_| s.lang.t("redelivered"));
    let filter = NoticeFilter { state: delivery, recipient: q.recipient.as_deref(), next, message };
    html(StatusCode::OK, pages::notices(&s.frame(), &list, &filter))
}

/// One dead notice again, through the API's single redelivery (`409` where the recipient has
/// nowhere to deliver to).
pub(super) async fn redeliver_one(state: State, req: HttpRequest, id: web::Path<String>, form: web::Form<CsrfForm>) -> HttpResponse {
    let s = signed!(form_signed_in(&state, &req, &form.csrf));
    attempt!(&req, service::notices::redeliver(&state, &id).await);
    if let Err(r) = audit(&state, &req, &s.session.signer, "notice.redeliver", &id).await {
        return r;
    }
    see_other("/console/notices?state=dead&done=1")
}

/// Every dead notice again, through the API's bulk redelivery.
pub(super) async fn redeliver_all(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let s = signed!(form_signed_in(&state, &req, &form.csrf));
    let filter = ops::RedeliverFilter { recipient: None, created_after: None };
    let done = attempt!(&req, ops::redeliver_dead(&state, &filter).await);
    if let Err(r) = audit(&state, &req, &s.session.signer, "notices.redeliver_dead", &done.count.to_string()).await {
        return r;
    }
    see_other("/console/notices?state=dead&done=1")
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    cursor: Option<String>,
}

pub(super) async fn eod(state: State, req: HttpRequest, q: web::Query<PageQuery>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let before = q.cursor.as_deref().and_then(decode_cursor).unwrap_or(0);
    let mut runs = attempt!(&req, ops::eod_runs(&state, before, 51).await);
    let next = (runs.len() > 50).then(|| encode_cursor(runs[49].seq));
    runs.truncate(50);
    html(StatusCode::OK, pages::eod(&s.frame(), &runs, next, None))
}

#[derive(Deserialize)]
pub(super) struct EodForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    business_date: String,
}

fn business_date(form: &EodForm) -> Result<chrono::NaiveDate, ApiError> {
    let body = serde_json::json!({ "business_date": form.business_date });
    crate::http::requests::plans::EodRequest::read(&body).map(|r| r.business_date)
}

/// The confirmation step: the date to close, and a button that closes it.
pub(super) async fn eod_confirm(state: State, req: HttpRequest, form: web::Form<EodForm>) -> HttpResponse {
    let s = signed!(form_signed_in(&state, &req, &form.csrf));
    let date = attempt!(&req, business_date(&form));
    html(StatusCode::OK, pages::eod_confirm(&s.frame(), date))
}

/// End of day through the API's service (recorded as an `api` run), audited.
pub(super) async fn eod_run(state: State, req: HttpRequest, form: web::Form<EodForm>) -> HttpResponse {
    let s = signed!(form_signed_in(&state, &req, &form.csrf));
    let date = attempt!(&req, business_date(&form));
    let cfg = &state.settings;
    let run = service::eod::run(&state.pool, &*state.clock, date, cfg.clock.allow_future_dates, cfg.eod.chunk_size, EodTrigger::Api);
    let summary = attempt!(&req, run.await);
    if let Err(r) = audit(&state, &req, &s.session.signer, "eod.run", &date.to_string()).await {
        return r;
    }
    let runs = attempt!(&req, ops::eod_runs(&state, 0, 50).await);
    let message = format!("{}: {}", s.lang.t("eod_done"), serde_json::to_string(&summary).unwrap_or_default());
    html(StatusCode::OK, pages::eod(&s.frame(), &runs, None, Some(message)))
}

#[derive(Deserialize)]
pub(super) struct AgingQuery {
    as_of: Option<String>,
    bank_id: Option<String>,
}

pub(super) async fn aging(state: State, req: HttpRequest, q: web::Query<AgingQuery>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let bank = q.bank_id.as_deref().filter(|b| !b.is_empty());
    let as_of = q.as_of.as_deref().filter(|d| !d.is_empty());
    let query = attempt!(&req, crate::http::requests::ops::AgingQuery::read(as_of, bank));
    let aging = attempt!(&req, ops::aging(&state, query.as_of, query.bank_id.as_deref()).await);
    // The filter's choices: the first banks (no more than a search answers).
    let (banks, _) = attempt!(&req, ops::reference(&state, 0, 0, ops::SEARCH_MAX).await);
    let ids: Vec<String> = banks.into_iter().map(|b| b.id).collect();
    html(StatusCode::OK, pages::aging(&s.frame(), &aging, &ids, query.bank_id.as_deref()))
}

#[derive(Deserialize)]
pub(super) struct ReferenceQuery {
    banks: Option<String>,
    providers: Option<String>,
}

/// Banks and providers, each table 50 rows a page with its own cursor (a malformed one: from
/// the first, as the notices' list does).
pub(super) async fn reference(state: State, req: HttpRequest, q: web::Query<ReferenceQuery>) -> HttpResponse {
    let s = signed!(signed_in(&state, &req));
    let after = |c: &Option<String>| c.as_deref().and_then(decode_cursor).unwrap_or(0);
    let (banks_after, providers_after) = (after(&q.banks), after(&q.providers));
    let (mut banks, mut providers) = attempt!(&req, ops::reference(&state, banks_after, providers_after, PAGE + 1).await);
    let next = |seqs: Vec<i64>| (seqs.len() > PAGE as usize).then(|| encode_cursor(seqs[PAGE as usize - 1]));
    let cursors = pages::ReferenceCursors {
        banks: q.banks.clone(),
        providers: q.providers.clone(),
        next_banks: next(banks.iter().map(|b| b.seq).collect()),
        next_providers: next(providers.iter().map(|p| p.seq).collect()),
    };
    banks.truncate(PAGE as usize);
    providers.truncate(PAGE as usize);
    html(StatusCode::OK, pages::reference(&s.frame(), &banks, &providers, &cursors))
}

/// Rows a page of the reference tables.
const PAGE: i64 = 50;
