//! The console's detail views: one order with everything it caused (repayments, write-off,
//! notices with their delivery attempts, journal entries), and one notice with its attempts.
//! Identity stays masked: only the order view's masked IMEI is shown, never the borrower.

use super::pages::{Frame, page};
use super::text::{Lang, shanghai, yuan};
use crate::db::journal::Posted;
use crate::db::notices::{AdminNotice, Attempt};
use crate::db::orders::Hold;
use crate::domain::status::ReturnStatus;
use crate::service::ops::{NoticeHistory, OrderDetail};
use crate::service::orders::OrderView;
use crate::service::returns::ReturnView;
use maud::{Markup, html};

/// The order's head line and its hold.
pub fn order_head(l: Lang, o: &OrderView) -> Markup {
    html! {
        h2 { (o.out_order_no) " · " (o.id) }
        p { (l.t("status")) " " span.status { (o.status) } " · " (l.t("principal")) " " span.principal { (yuan(o.principal)) }
            " · " (l.t("bank")) " " (o.bank_id) " · " (l.t("created_at")) " " (shanghai(o.created_at)) " · IMEI " (o.device.imei_masked)
            @if let Some(r) = &o.reason { " · " (l.t("reason")) " " span.reason { (r) } } }
        p #sale { (l.t("seller")) " " span.seller { (o.channel) ":" (o.store_id.as_deref().or(o.partner_id.as_deref()).unwrap_or(""))
                @if let Some(a) = &o.agent_id { " / " (a) } }
            " · " (l.t("product")) " " span.product { (o.product_id) " · " (o.term_months) } " · " (l.t("down_payment")) " " (yuan(o.down_payment))
            @if let Some(t) = o.funding_deadline { " · " (l.t("funding_deadline")) " " (shanghai(t)) } }
        (hold_part(l, &o.hold))
    }
}

/// The hold: its balance (`amount = released + converted + voided + remaining`), why it was
/// voided or declined, and its confirmation by the provider (API.md §12) when it had one.
fn hold_part(l: Lang, h: &Hold) -> Markup {
    html! {
        p #hold.hold { (l.t("hold")) " " (h.id) " · " span.hold-status { (h.status) } " · " (l.t("amount")) " " (yuan(h.amount))
            " · " (l.t("released")) " " (yuan(h.released)) " · " (l.t("converted")) " " (yuan(h.converted))
            " · " (l.t("voided")) " " span.hold-voided { (yuan(h.voided)) } " · " (l.t("remaining")) " " (yuan(h.remaining))
            @if let Some(r) = h.void_reason { " · " (l.t("void_reason")) " " span.void-reason { (r) } }
            @if let Some(r) = h.decline_reason { " · " (l.t("decline_reason")) " " span.decline-reason { (r) } }
            @if let Some(t) = h.confirm_deadline { " · " (l.t("confirm_deadline")) " " (shanghai(t)) }
            @if let Some(t) = h.confirmed_at { " · " (l.t("confirmed_at")) " " (shanghai(t)) }
            @if let Some(n) = &h.provider_order_no { " · " (l.t("provider_order_no")) " " (n) } }
    }
}

/// The plan, its installments and its write-off, when the order was funded.
fn plan_part(l: Lang, o: &OrderView) -> Markup {
    let Some(plan) = &o.plan else { return html! {} };
    html! {
        p.plan { (l.t("plan")) " " (plan.id) " · " (plan.loan_no) " · " (plan.status) " · " (l.t("funded_on")) " " (plan.funded_on)
            " · " (l.t("outstanding")) " " (yuan(plan.outstanding_principal)) " · " (l.t("compensated")) " " (yuan(plan.compensated))
            @if let Some(a) = &plan.accelerated { " · " (l.t("accelerated")) " " span.accelerated { (a.as_of) " · " (a.reason) } } }
        div.scroll { table.installments {
            tr { th { "#" } th { (l.t("due_on")) } th { (l.t("principal")) } th { (l.t("unpaid")) } th { (l.t("status")) } }
            @for i in &plan.installments {
                @let owed = i.principal + i.interest + i.fee + i.penalty;
                @let paid = i.paid_principal + i.paid_interest + i.paid_fee + i.paid_penalty + i.waived;
                tr { td { (i.seq) } td { (i.due_on) } td.num { (yuan(i.principal)) } td.num { (yuan(owed.saturating_sub(paid))) } td { (i.status) } }
            }
        } }
        @if let Some(w) = &plan.written_off {
            h3 { (l.t("write_off")) }
            p #write-off { (w.on) " · " (w.reason) " · " (w.reference) " · " (l.t("total")) " " (yuan(w.total))
                " (" (l.t("principal")) " " (yuan(w.principal)) ", " (l.t("interest")) " " (yuan(w.interest)) ", "
                (l.t("fee")) " " (yuan(w.fee)) ", " (l.t("penalty")) " " (yuan(w.penalty)) ")" }
        }
    }
}

fn repayments_part(l: Lang, d: &OrderDetail) -> Markup {
    html! {
        h3 { (l.t("repayments")) }
        @if d.repayments.is_empty() { p.none { (l.t("none")) } } @else {
            div.scroll { table #repayments {
                tr { th { "ID" } th { (l.t("paid_on")) } th { (l.t("ref_no")) } th { (l.t("amount")) } th { (l.t("principal")) }
                     th { (l.t("interest")) } th { (l.t("fee")) } th { (l.t("penalty")) } th { (l.t("hold_released")) } }
                @for r in &d.repayments {
                    tr { td { (r.id) } td { (r.paid_on) } td { (r.reference) } td.num { (yuan(r.amount)) } td.num { (yuan(r.principal)) }
                         td.num { (yuan(r.interest)) } td.num { (yuan(r.fee)) } td.num { (yuan(r.penalty)) } td.num { (yuan(r.hold_released)) } }
                }
            } }
        }
        @if !d.recoveries.is_empty() {
            h3 { (l.t("recoveries")) }
            div.scroll { table #recoveries {
                tr { th { "ID" } th { (l.t("paid_on")) } th { (l.t("ref_no")) } th { (l.t("amount")) } }
                @for r in &d.recoveries { tr { td { (r.id) } td { (r.paid_on) } td { (r.reference) } td.num { (yuan(r.amount)) } } }
            } }
        }
    }
}

/// The phrase of a return's status.
fn return_status(l: Lang, s: ReturnStatus) -> &'static str {
    l.t(match s {
        ReturnStatus::Requested => "return_requested",
        ReturnStatus::Completed => "return_completed",
        ReturnStatus::Rejected => "return_rejected",
    })
}

/// The phrase of a return's reason (API.md §13's three), the stored text otherwise.
fn return_reason(l: Lang, reason: &str) -> &str {
    match reason {
        "no_reason" => l.t("no_reason"),
        "performance_fault" => l.t("performance_fault"),
        "other" => l.t("other_reason"),
        stored => stored,
    }
}

/// A return's seven amounts (API.md §13), in the order of the table's head.
fn return_amounts(r: &ReturnView) -> [crate::domain::money::Amount; 7] {
    [
        r.principal_to_bank,
        r.repayments_to_refund,
        r.interest_waived,
        r.fee_waived,
        r.penalty_waived,
        r.down_payment_to_refund,
        r.hold_to_void,
    ]
}

const RETURN_AMOUNTS: [&str; 7] = [
    "principal_to_bank",
    "repayments_to_refund",
    "interest_waived",
    "fee_waived",
    "penalty_waived",
    "down_payment_to_refund",
    "hold_to_void",
];

/// One return: what it is and where it stands on a head line, why it was rejected and its note
/// when there are, then its amounts under the table's head.
fn return_rows(l: Lang, r: &ReturnView) -> Markup {
    html! {
        tbody.return id={ "ret-" (r.id) } data-status=(r.status) {
            tr.return-head { th colspan="7" {
                (r.id) " · " span.return-status { (return_status(l, r.status)) } " · " (l.t("reason")) " " span.return-reason { (return_reason(l, &r.reason)) }
                " · " (l.t("returned_on")) " " (r.returned_on) " · " (l.t("ref_no")) " " span.return-reference { (r.reference) }
                @if let Some(d) = r.completed_on { " · " (l.t("completed_on")) " " span.completed-on { (d) } }
                " · " (l.t("created_at")) " " (shanghai(r.created_at)) } }
            @if let Some(why) = &r.rejection_reason { tr { td colspan="7" { (l.t("rejection_reason")) ": " span.rejection-reason { (why) } } } }
            @if let Some(note) = &r.note { tr { td colspan="7" { (l.t("note")) ": " span.return-note { (note) } } } }
            tr.return-amounts { @for a in return_amounts(r) { td.num { (yuan(a)) } } }
        }
    }
}

/// The order's device returns (API.md §13), newest first.
fn order_returns(l: Lang, d: &OrderDetail) -> Markup {
    html! {
        h3 { (l.t("returns")) " (" (d.returns.len()) ")" }
        @if d.returns.is_empty() { p.none { (l.t("none")) } } @else {
            div.scroll { table #returns {
                thead { tr { @for k in RETURN_AMOUNTS { th.num { (l.t(k)) } } } }
                @for r in &d.returns { (return_rows(l, r)) }
            } }
        }
    }
}

/// What an attempt came to: the HTTP status when an answer came, the error otherwise (or both).
fn outcome(l: Lang, delivered: bool, status: Option<i32>, error: Option<&str>) -> Markup {
    html! {
        @if delivered { span.ok { (l.t("delivered")) @if let Some(s) = status { " · HTTP " (s) } } }
        @else if let Some(e) = error { span.err { (e) } }
        @else if let Some(s) = status { span.err { "HTTP " (s) } }
    }
}

fn attempts_table(l: Lang, n: &AdminNotice, attempts: &[Attempt]) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.no-attempts { (l.t("no_attempts"))
                @if let Some(at) = n.last_attempt_at { " · " (l.t("last_attempt")) " " (shanghai(at)) " " (outcome(l, n.delivered_at.is_some(), n.last_status, n.last_error.as_deref())) } }
        } @else {
            div.scroll { table.attempts {
                tr { th { "#" } th { (l.t("attempted_at")) } th { (l.t("result")) } th { (l.t("next_attempt")) } }
                @for a in attempts {
                    tr.attempt { td.num { (a.attempt) } td { (shanghai(a.attempted_at)) } td.result { (outcome(l, a.delivered, a.status, a.error.as_deref())) }
                         td { @if let Some(t) = a.next_attempt_at { (shanghai(t)) } @else { "—" } } }
                }
            } }
        }
    }
}

/// A notice's line: id (to its detail), type, recipient, state, attempts, next attempt.
fn notice_summary(l: Lang, n: &AdminNotice) -> Markup {
    html! {
        a href={ "/console/notices/" (n.notice.id) } { (n.notice.id) } " · " (n.notice.kind) " → "
        (n.notice.recipient["kind"].as_str().unwrap_or("")) ":" (n.notice.recipient["id"].as_str().unwrap_or(""))
        " · " span.state { (l.t(n.state.as_str())) } " · " (l.t("attempts")) " " (n.attempts)
        @if let Some(t) = n.next_attempt_at { " · " (l.t("next_attempt")) " " (shanghai(t)) }
    }
}

fn notices_part(l: Lang, d: &OrderDetail) -> Markup {
    html! {
        h3 { (l.t("notices")) " (" (d.notices.len()) ")" }
        div #order-notices {
            @for h in &d.notices {
                details.notice id={ "n-" (h.notice.notice.id) } open[!h.attempts.is_empty() && h.notice.state.as_str() != "delivered"] {
                    summary { (notice_summary(l, &h.notice)) }
                    (attempts_table(l, &h.notice, &h.attempts))
                }
            }
        }
    }
}

/// What an entry's lines miss to balance, in fen: debits less credits (0 when balanced).
fn imbalance(e: &Posted) -> i64 {
    e.lines.iter().map(|l| l.1).sum()
}

/// An entry and its lines. One that does not balance (posting refuses it, so the book was
/// changed behind the engine's back) says so in red on its head line, with its totals and the
/// difference under its lines.
fn entry(l: Lang, e: &Posted) -> Markup {
    let fen = |x: i64| yuan(crate::domain::money::Amount::from_fen(x.abs()));
    let off = imbalance(e);
    html! {
        tbody.entry.unbalanced[off != 0] id={ "je-" (e.id) } {
            tr.entry-head { th colspan="2" { (e.kind) " · " (e.booked_on) @if let Some(r) = &e.reference { " · " (r) } }
                th.num colspan="2" { @if off == 0 { span.balanced { (l.t("balanced")) } } @else { span.unbalanced { "⚠ " (l.t("unbalanced")) } } } }
            @for (account, amount) in &e.lines {
                tr { td {} td.account { (account) } td.num { @if *amount > 0 { (fen(*amount)) } } td.num { @if *amount < 0 { (fen(*amount)) } } }
            }
            @if off != 0 {
                @let debits: i64 = e.lines.iter().map(|l| l.1.max(0)).sum();
                @let credits: i64 = e.lines.iter().map(|l| l.1.min(0)).sum();
                tr.entry-total { td {} td { (l.t("total")) " · " (l.t("difference")) " " span.difference { (fen(off)) } }
                    td.num { (fen(debits)) } td.num { (fen(credits)) } }
            }
        }
    }
}

/// The order's entries, each with its lines.
fn journal_part(l: Lang, d: &OrderDetail) -> Markup {
    html! {
        h3 { (l.t("journal")) " (" (d.journal.len()) ")" }
        div.scroll { table #journal {
            thead { tr { th { "#" } th { (l.t("account")) } th.num { (l.t("debit")) } th.num { (l.t("credit")) } } }
            @for e in &d.journal { (entry(l, e)) }
        } }
    }
}

/// At the top of the order, where nobody misses it: the entries that do not balance, each linked
/// to its lines; nothing when all do.
fn journal_alert(l: Lang, d: &OrderDetail) -> Markup {
    let off: Vec<&Posted> = d.journal.iter().filter(|e| imbalance(e) != 0).collect();
    html! {
        @if !off.is_empty() {
            p #journal-alert.alert role="alert" { "⚠ " (l.t("journal_unbalanced")) " "
                @for (i, e) in off.iter().enumerate() { @if i > 0 { ", " } a href={ "#je-" (e.id) } { (e.kind) " #" (e.id) } } }
        }
    }
}

/// The whole of one order.
pub fn order(l: Lang, d: &OrderDetail) -> Markup {
    html! {
        section.order id=(d.order.id) {
            (order_head(l, &d.order))
            (journal_alert(l, d))
            (plan_part(l, &d.order))
            (repayments_part(l, d))
            (order_returns(l, d))
            (notices_part(l, d))
            (journal_part(l, d))
        }
    }
}

/// One order's page (`/console/orders/{id}`).
pub fn order_page(f: &Frame, d: &OrderDetail) -> Markup {
    page(f, "orders", html! { p { a href="/console/orders" { "← " (f.lang.t("search")) } } (order(f.lang, d)) })
}

/// One notice's page (`/console/notices/{id}`): what it says, where its delivery stands, its attempts.
pub fn notice_page(f: &Frame, h: &NoticeHistory) -> Markup {
    let (l, n) = (f.lang, &h.notice);
    let data = serde_json::to_string_pretty(&n.notice.data).unwrap_or_default();
    page(
        f,
        "notices",
        html! {
            section.notice id=(n.notice.id) {
                h2 { (n.notice.id) " · " (n.notice.kind) }
                p { (notice_summary(l, n)) " · " (l.t("created_at")) " " (shanghai(n.notice.created_at)) }
                @if let Some(order) = n.notice.data["order_id"].as_str() { p { a href={ "/console/orders/" (order) } { (order) } } }
                pre.data { (data) }
                h3 { (l.t("attempt_history")) }
                (attempts_table(l, n, &h.attempts))
                @if n.state.as_str() == "dead" {
                    form method="post" action={ "/console/notices/" (n.notice.id) "/redeliver" } {
                        input type="hidden" name="csrf" value=(f.csrf);
                        button.redeliver type="submit" { (l.t("redeliver")) }
                    }
                }
            }
        },
    )
}
