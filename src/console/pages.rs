//! The console's pages, rendered on the server with maud (every interpolated value is escaped).
//! No inline script or style: the Content-Security-Policy allows only this origin's files, and
//! bars are SVG shapes whose widths are attributes.

use super::text::{Lang, shanghai, yuan};
use crate::db::notices::AdminNotice;
use crate::domain::aging::BucketView;
use crate::service::ops::{Aging, EodRunView, OrderDetail, Portfolio};
use crate::service::orders::OrderView;
use maud::{DOCTYPE, Markup, html};

pub const HTMX_PATH: &str = "/console/assets/htmx-2.0.11.min.js";
pub const CSS_PATH: &str = "/console/assets/console.css";

/// What every signed-in page needs: the language, the session's CSRF token, the page's path.
pub struct Frame<'a> {
    pub lang: Lang,
    pub csrf: &'a str,
    pub path: &'a str,
}

const TABS: [(&str, &str); 6] = [
    ("/console/overview", "overview"),
    ("/console/orders", "orders"),
    ("/console/notices", "notices"),
    ("/console/eod", "eod"),
    ("/console/aging", "aging"),
    ("/console/reference", "reference"),
];

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false}"#;
            title { (title) " · " (lang.t("title")) }
            link rel="stylesheet" href=(CSS_PATH);
            script src=(HTMX_PATH) defer {}
        }
    }
}

/// A signed-in page: the tabs, the language switch, sign-out, then `body`.
pub fn page(f: &Frame, tab: &'static str, body: Markup) -> Markup {
    let (other, other_name) = f.lang.other();
    html! {
        (DOCTYPE)
        html lang=(f.lang.code()) {
            (head(f.lang, f.lang.t(tab)))
            body {
                header {
                    strong.brand { (f.lang.t("title")) }
                    nav {
                        @for (href, key) in TABS {
                            a href=(href) class=[(key == tab).then_some("on")] { (f.lang.t(key)) }
                        }
                    }
                    a.lang href={ "/console/lang?to=" (other) "&back=" (f.path) } { (other_name) }
                    form method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(f.csrf);
                        button #sign-out type="submit" { (f.lang.t("sign_out")) }
                    }
                }
                main { h1 { (f.lang.t(tab)) } (body) }
            }
        }
    }
}

pub fn sign_in(lang: Lang, error: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, lang.t("sign_in")))
            body.signin {
                main {
                    h1 { (lang.t("title")) }
                    @if error { p.error #error { (lang.t("bad_key")) } }
                    form method="post" action="/console/sign-in" {
                        label for="key" { (lang.t("admin_key")) }
                        input #key type="password" name="key" autocomplete="off" required;
                        button #submit type="submit" { (lang.t("sign_in")) }
                    }
                }
            }
        }
    }
}

/// A horizontal bar of `part` against `whole`, as SVG.
fn bar(part: i64, whole: i64) -> Markup {
    let width = if whole > 0 { (part.clamp(0, whole) * 200 / whole).max(i64::from(part > 0)) } else { 0 };
    html! {
        svg.bar width="200" height="12" viewBox="0 0 200 12" preserveAspectRatio="none" role="img" {
            rect.track x="0" y="0" width="200" height="12" {}
            rect.fill x="0" y="0" width=(width) height="12" {}
        }
    }
}

pub fn overview(f: &Frame, p: &Portfolio, closings: &[(chrono::NaiveDate, Option<&EodRunView>)]) -> Markup {
    let l = f.lang;
    page(
        f,
        "overview",
        html! {
            h2 { (l.t("banks")) }
            div.scroll { table #banks {
                tr { th { (l.t("bank")) } th { (l.t("exposure")) } th {} th { (l.t("active")) } th { (l.t("defaulted")) } th { (l.t("written_off")) } th { (l.t("outstanding")) } }
                @for b in &p.banks {
                    tr {
                        td { (b.bank_id) }
                        td { (yuan(b.exposure_used)) " / " (yuan(b.exposure_limit)) }
                        td { (bar(b.exposure_used.fen(), b.exposure_limit.fen())) }
                        td.num { (b.plans.active) } td.num { (b.plans.defaulted) } td.num { (b.plans.written_off) }
                        td.num { (yuan(b.outstanding_principal)) }
                    }
                }
            } }
            h2 { (l.t("providers")) }
            div.scroll { table #providers {
                tr { th { (l.t("provider")) } th { (l.t("lines")) } th { (l.t("holds_active")) } th { (l.t("held")) } th { (l.t("held_pending")) } th { (l.t("drawn")) } }
                @for v in &p.providers {
                    tr { td { (v.provider_id) } td.num { (v.lines) } td.num { (v.holds_active) } td.num { (yuan(v.held)) } td.num { (yuan(v.held_pending)) } td.num { (yuan(v.drawn)) } }
                }
                tr.total { td { (l.t("total")) } td.num { (p.totals.lines) } td.num { (p.totals.holds_active) } td.num { (yuan(p.totals.held)) } td.num { (yuan(p.totals.held_pending)) } td.num { (yuan(p.totals.drawn)) } }
            } }
            h2 { (l.t("today_eod")) }
            ul #closings {
                @for (date, run) in closings {
                    li { (date) ": " @match run { Some(r) => { (r.summary) }, None => { (l.t("not_run")) } } }
                }
            }
        },
    )
}

/// The lookup: the search box, then the one order found in full, or the orders found as a list
/// linking to each.
pub fn orders(f: &Frame, q: &str, found: Option<&[OrderView]>, detail: Option<&OrderDetail>) -> Markup {
    let l = f.lang;
    page(
        f,
        "orders",
        html! {
            form #search method="get" action="/console/orders" hx-get="/console/orders" hx-target="main" hx-select="main" hx-push-url="true" {
                input #q type="search" name="q" value=(q) placeholder=(l.t("search_hint"));
                button #search-submit type="submit" { (l.t("search")) }
            }
            @if let Some(d) = detail { (super::detail::order(l, d)) }
            @else if let Some(found) = found {
                @if found.is_empty() { p #no-results { (l.t("no_results")) } } @else {
                    div.scroll { table #results {
                        tr { th { "ID" } th { "out_order_no" } th { (l.t("status")) } th { (l.t("principal")) } th { (l.t("bank")) } th { (l.t("created_at")) } }
                        @for o in found {
                            tr { td { a href={ "/console/orders/" (o.id) } { (o.id) } } td { (o.out_order_no) } td { (o.status) }
                                 td.num { (yuan(o.principal)) } td { (o.bank_id) } td { (shanghai(o.created_at)) } }
                        }
                    } }
                }
            }
        },
    )
}

pub struct NoticeFilter<'a> {
    pub state: Option<&'a str>,
    pub recipient: Option<&'a str>,
    pub next: Option<String>,
    pub message: Option<&'a str>,
}

pub fn notices(f: &Frame, list: &[AdminNotice], filter: &NoticeFilter) -> Markup {
    let l = f.lang;
    page(
        f,
        "notices",
        html! {
            @if let Some(m) = filter.message { p #message.message { (m) } }
            form method="get" action="/console/notices" {
                select name="state" {
                    option value="" { "—" }
                    @for s in ["dead", "pending", "delivered", "pull_only"] { option value=(s) selected[filter.state == Some(s)] { (l.t(s)) } }
                }
                input type="text" name="recipient" placeholder="bank:bk" value=[filter.recipient];
                button type="submit" { (l.t("filter")) }
            }
            form method="post" action="/console/notices/redeliver-all" {
                input type="hidden" name="csrf" value=(f.csrf);
                button #redeliver-all type="submit" { (l.t("redeliver_all")) }
            }
            div.scroll { table #notices {
                tr { th { "ID" } th { (l.t("type")) } th { (l.t("recipient")) } th { (l.t("state")) } th { (l.t("attempts")) } th { (l.t("last_error")) } th { (l.t("created_at")) } th {} }
                @for n in list {
                    tr id=(n.notice.id) {
                        td { a.history href={ "/console/notices/" (n.notice.id) } { (n.notice.id) } } td { (n.notice.kind) }
                        td { (n.notice.recipient["kind"].as_str().unwrap_or("")) ":" (n.notice.recipient["id"].as_str().unwrap_or("")) }
                        td.state { (n.state) } td.num { (n.attempts) } td { (n.last_error.as_deref().unwrap_or("")) } td { (shanghai(n.notice.created_at)) }
                        td { @if n.state.as_str() == "dead" {
                            form method="post" action={ "/console/notices/" (n.notice.id) "/redeliver" } {
                                input type="hidden" name="csrf" value=(f.csrf);
                                button.redeliver type="submit" { (l.t("redeliver")) }
                            }
                        } }
                    }
                }
            } }
            @if let Some(c) = &filter.next {
                a.next href={ "/console/notices?cursor=" (c) "&state=" (filter.state.unwrap_or("")) "&recipient=" (filter.recipient.unwrap_or("")) } { (l.t("next_page")) }
            }
        },
    )
}

pub fn eod(f: &Frame, runs: &[EodRunView], next: Option<String>, message: Option<String>) -> Markup {
    let l = f.lang;
    page(
        f,
        "eod",
        html! {
            @if let Some(m) = message { p #message.message { (m) } }
            form #eod-form method="post" action="/console/eod/confirm" {
                input type="hidden" name="csrf" value=(f.csrf);
                label for="business_date" { (l.t("business_date")) }
                input #business_date type="date" name="business_date" required;
                button #eod-run type="submit" { (l.t("run_eod")) }
            }
            div.scroll { table #runs {
                tr { th { (l.t("business_date")) } th { (l.t("trigger")) } th { (l.t("started_at")) } th { (l.t("duration")) } th { (l.t("summary")) } }
                @for r in runs {
                    tr { td { (r.business_date) } td { (r.trigger) } td { (shanghai(r.started_at)) } td.num { (r.duration_ms) } td.summary { (r.summary) } }
                }
            } }
            @if let Some(c) = next { a.next href={ "/console/eod?cursor=" (c) } { (l.t("next_page")) } }
        },
    )
}

pub fn eod_confirm(f: &Frame, date: chrono::NaiveDate) -> Markup {
    let l = f.lang;
    page(
        f,
        "eod",
        html! {
            p #confirm-text { (l.t("confirm_eod")) " " strong { (date) } }
            form method="post" action="/console/eod/run" {
                input type="hidden" name="csrf" value=(f.csrf);
                input type="hidden" name="business_date" value=(date);
                button #eod-confirm type="submit" { (l.t("confirm")) }
                " " a href="/console/eod" { (l.t("cancel")) }
            }
        },
    )
}

/// The buckets as a bar chart of outstanding principal, drawn by the server.
fn aging_chart(buckets: &[BucketView]) -> Markup {
    let max = buckets.iter().map(|b| b.outstanding_principal.fen()).max().unwrap_or(0).max(1);
    html! {
        svg #aging-chart width="640" height=(buckets.len() * 28 + 8) viewBox={ "0 0 640 " (buckets.len() * 28 + 8) } role="img" {
            @for (i, b) in buckets.iter().enumerate() {
                @let y = i * 28 + 4;
                text x="0" y=(y + 15) { (b.bucket) }
                rect.fill x="80" y=(y) width=(b.outstanding_principal.fen() * 400 / max) height="20" {}
                text x="490" y=(y + 15) { (yuan(b.outstanding_principal)) }
            }
        }
    }
}

pub fn aging(f: &Frame, a: &Aging, banks: &[String], bank: Option<&str>) -> Markup {
    let l = f.lang;
    page(
        f,
        "aging",
        html! {
            form method="get" action="/console/aging" {
                label for="as_of" { (l.t("as_of")) } input #as_of type="date" name="as_of" value=(a.as_of);
                select name="bank_id" {
                    option value="" { (l.t("all_banks")) }
                    @for b in banks { option value=(b) selected[bank == Some(b.as_str())] { (b) } }
                }
                button type="submit" { (l.t("filter")) }
            }
            (aging_chart(&a.buckets))
            div.scroll { table #aging {
                tr { th { (l.t("bucket")) } th { (l.t("plans")) } th { (l.t("outstanding")) } th { (l.t("unpaid_due")) } }
                @for b in &a.buckets { tr { td { (b.bucket) } td.num { (b.plans) } td.num { (yuan(b.outstanding_principal)) } td.num { (yuan(b.unpaid_due)) } } }
            } }
        },
    )
}

/// Where each table of the reference page stands (its cursor as given) and its next page's cursor.
pub struct ReferenceCursors {
    pub banks: Option<String>,
    pub providers: Option<String>,
    pub next_banks: Option<String>,
    pub next_providers: Option<String>,
}

/// The reference page with the one table's cursor moved on, the other's kept.
fn reference_href(banks: Option<&str>, providers: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(b) = banks {
        q.append_pair("banks", b);
    }
    if let Some(p) = providers {
        q.append_pair("providers", p);
    }
    format!("/console/reference?{}", q.finish())
}

pub fn reference(f: &Frame, banks: &[crate::db::setup::Bank], providers: &[crate::db::setup::Provider], c: &ReferenceCursors) -> Markup {
    let l = f.lang;
    let none = l.t("none");
    page(
        f,
        "reference",
        html! {
            h2 { (l.t("banks")) }
            div.scroll { table #ref-banks {
                tr { th { "ID" } th { (l.t("name")) } th { (l.t("priority")) } th { "APR" } th { (l.t("exposure")) } th { (l.t("webhook")) } }
                @for b in banks {
                    tr id={ "bank-" (b.id) } { td { (b.id) } td { (b.name) } td.num { (b.priority) } td { (b.apr_min) "–" (b.apr_max) }
                         td { (yuan(b.exposure_used)) " / " (yuan(b.exposure_limit)) } td { (b.webhook_url.as_deref().unwrap_or(none)) } }
                }
            } }
            @if let Some(next) = &c.next_banks { a.next #next-banks href=(reference_href(Some(next), c.providers.as_deref())) { (l.t("next_page")) } }
            h2 { (l.t("providers")) }
            div.scroll { table #ref-providers {
                tr { th { "ID" } th { (l.t("name")) } th { (l.t("webhook")) } th { (l.t("hold_confirmation")) } th { (l.t("confirmation_timeout")) } }
                @for p in providers {
                    tr id={ "provider-" (p.id) } { td { (p.id) } td { (p.name) } td { (p.webhook_url.as_deref().unwrap_or(none)) }
                         td.confirmation { (p.hold_confirmation) } td.num { (p.hold_confirmation_timeout_minutes) } }
                }
            } }
            @if let Some(next) = &c.next_providers { a.next #next-providers href=(reference_href(c.banks.as_deref(), Some(next))) { (l.t("next_page")) } }
        },
    )
}

/// A refusal shown as a page (a form without its CSRF token, a business refusal).
pub fn refused(lang: Lang, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, lang.t("refused")))
            body { main { h1 { (lang.t("refused")) } p #refusal { (message) } a href="/console/overview" { (lang.t("overview")) } } }
        }
    }
}
