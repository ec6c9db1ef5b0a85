//! The API, stated once: one row per endpoint. Route registration, the principal check (403), the
//! `Allow` header of a 405 and the OpenAPI document all read [`ENDPOINTS`], so adding an endpoint
//! is one row here, its request type and its service function.

use super::requests::credit_lines::{CreditLineRequest, DebtRepaymentRequest};
use super::requests::holds::{AcknowledgeRequest, ConfirmRequest, DeclineRequest};
use super::requests::ops::RedeliverRequest;
use super::requests::orders::{CancelRequest, FundingRequest, OrderRequest, QuoteRequest};
use super::requests::plans::{AccelerateRequest, EodRequest, RepaymentRequest};
use super::requests::returns::{ReturnDecisionRequest, ReturnRequest};
use super::requests::setup::{
    ApiKeyRequest, BankPatch, BankRequest, PartnerPatch, PartnerRequest, ProductPatch, ProductRequest, ProviderPatch, ProviderRequest,
    StorePatch, StoreRequest,
};
use super::requests::write_offs::{RecoveryRequest, WriteOffRequest};
use super::{admin, credit_lines, holds, operations, ops, orders, plans, reports, returns, setup, write_offs};
use crate::auth::{Caller, PrincipalKind};
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, ResponseError, Route, web};
use utoipa::PartialSchema;
use utoipa::openapi::{RefOr, Schema};

/// The methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    fn route(self) -> Route {
        match self {
            Verb::Get => web::get(),
            Verb::Post => web::post(),
            Verb::Patch => web::patch(),
            Verb::Delete => web::delete(),
        }
    }
}

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    /// Answered without a key (operations endpoints).
    Public,
    /// A key of one of these kinds; any other is `403 forbidden`.
    Kinds(&'static [PrincipalKind]),
}

/// What a success answers with, for the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// No body (`204`).
    Empty,
    /// A JSON object of the named schema.
    Json(&'static str),
    /// A JSON object of the named schema, or CSV on `Accept: text/csv`.
    JsonOrCsv(&'static str),
    /// A page of the named schema: `{data: [item], next_cursor}`.
    Page(&'static str),
    /// Plain text (`/metrics`).
    Text,
    /// The OpenAPI document itself, which does not describe itself.
    Document,
}

/// One endpoint: how it is reached, who may call it, and what it takes and answers.
pub struct Endpoint {
    pub verb: Verb,
    /// The actix path pattern, also the OpenAPI path (`/v1/orders/{id}`).
    pub path: &'static str,
    pub summary: &'static str,
    /// Attaches the handler to the verb's route: `|r| r.to(orders::get)`.
    pub handler: fn(Route) -> Route,
    pub access: Access,
    /// Takes an `Idempotency-Key` (API.md's (I) endpoints).
    pub idempotent: bool,
    /// The request body's schema (its type's, [`super::requests`]), `None` for endpoints without a body.
    pub request: Option<fn() -> RefOr<Schema>>,
    /// The success status (the usual one, where the service may answer another).
    pub status: u16,
    pub reply: Reply,
}

/// An endpoint for the admin only, taking no body and answering `200` with none; the builders
/// below change what differs, so that each row states only what is particular to it.
const fn row(verb: Verb, path: &'static str, summary: &'static str, handler: fn(Route) -> Route) -> Endpoint {
    Endpoint {
        verb,
        path,
        summary,
        handler,
        access: Access::Kinds(ADMIN),
        idempotent: false,
        request: None,
        status: 200,
        reply: Reply::Empty,
    }
}

impl Endpoint {
    const fn public(self) -> Self {
        Endpoint { access: Access::Public, ..self }
    }
    const fn kinds(self, kinds: &'static [PrincipalKind]) -> Self {
        Endpoint { access: Access::Kinds(kinds), ..self }
    }
    const fn idempotent(self) -> Self {
        Endpoint { idempotent: true, ..self }
    }
    const fn takes(self, request: fn() -> RefOr<Schema>) -> Self {
        Endpoint { request: Some(request), ..self }
    }
    const fn answers(self, status: u16, reply: Reply) -> Self {
        Endpoint { status, reply, ..self }
    }
}

use PrincipalKind::{Admin, Bank, Partner, Provider, Store};
use Reply::{Json, JsonOrCsv, Page};
use Verb::{Delete, Get, Patch, Post};

const ADMIN: &[PrincipalKind] = &[Admin];
const ALL: &[PrincipalKind] = &PrincipalKind::ALL;
const SELLERS: &[PrincipalKind] = &[Store, Partner];
const SELLERS_AND_ADMIN: &[PrincipalKind] = &[Admin, Store, Partner];
const ORDER_READERS: &[PrincipalKind] = &[Store, Partner, Bank, Admin];
const BANK_OR_ADMIN: &[PrincipalKind] = &[Bank, Admin];

/// Every endpoint, in the order the routes are registered.
pub static ENDPOINTS: &[Endpoint] = &[
    // Operations (API.md section 9)
    row(Get, "/healthz", "Process up", |r| r.to(ops::healthz)).public().answers(200, Json("Status")),
    row(Get, "/readyz", "Database reachable and migrated (else 503 with the same schema)", |r| r.to(ops::readyz))
        .public()
        .answers(200, Json("Status")),
    row(Get, "/metrics", "Prometheus metrics", |r| r.to(ops::metrics)).public().answers(200, Reply::Text),
    row(Get, "/openapi.json", "This document", |r| r.to(ops::openapi)).public().answers(200, Reply::Document),
    // Set-up (section 2)
    row(Post, "/v1/admin/providers", "Create", |r| r.to(setup::create_provider))
        .takes(ProviderRequest::schema)
        .answers(201, Json("Provider")),
    row(Get, "/v1/admin/providers", "List in creation order", |r| r.to(setup::list_providers)).answers(200, Page("Provider")),
    row(Get, "/v1/admin/providers/{id}", "Read one", |r| r.to(setup::get_provider)).answers(200, Json("Provider")),
    row(Patch, "/v1/admin/providers/{id}", "Change any field but id", |r| r.to(setup::patch_provider))
        .takes(ProviderPatch::schema)
        .answers(200, Json("Provider")),
    row(Post, "/v1/admin/providers/{id}/webhook-secret", "Rotate the webhook secret", |r| r.to(setup::rotate_provider_secret))
        .answers(200, Json("WebhookSecret")),
    row(Post, "/v1/admin/banks", "Create", |r| r.to(setup::create_bank)).takes(BankRequest::schema).answers(201, Json("Bank")),
    row(Get, "/v1/admin/banks", "List in creation order", |r| r.to(setup::list_banks)).answers(200, Page("Bank")),
    row(Get, "/v1/admin/banks/{id}", "Read one", |r| r.to(setup::get_bank)).answers(200, Json("Bank")),
    row(Patch, "/v1/admin/banks/{id}", "Change any field but id", |r| r.to(setup::patch_bank))
        .takes(BankPatch::schema)
        .answers(200, Json("Bank")),
    row(Post, "/v1/admin/banks/{id}/webhook-secret", "Rotate the webhook secret", |r| r.to(setup::rotate_bank_secret))
        .answers(200, Json("WebhookSecret")),
    row(Post, "/v1/admin/stores", "Create", |r| r.to(setup::create_store)).takes(StoreRequest::schema).answers(201, Json("Store")),
    row(Get, "/v1/admin/stores", "List in creation order", |r| r.to(setup::list_stores)).answers(200, Page("Store")),
    row(Get, "/v1/admin/stores/{id}", "Read one", |r| r.to(setup::get_store)).answers(200, Json("Store")),
    row(Patch, "/v1/admin/stores/{id}", "Change any field but id", |r| r.to(setup::patch_store))
        .takes(StorePatch::schema)
        .answers(200, Json("Store")),
    row(Post, "/v1/admin/partners", "Create", |r| r.to(setup::create_partner))
        .takes(PartnerRequest::schema)
        .answers(201, Json("PartnerView")),
    row(Get, "/v1/admin/partners", "List in creation order", |r| r.to(setup::list_partners)).answers(200, Page("PartnerView")),
    // A partner reads its own record (another's is 404).
    row(Get, "/v1/admin/partners/{id}", "Read one", |r| r.to(setup::get_partner))
        .kinds(&[Admin, Partner])
        .answers(200, Json("PartnerView")),
    row(Patch, "/v1/admin/partners/{id}", "Change any field but id", |r| r.to(setup::patch_partner))
        .takes(PartnerPatch::schema)
        .answers(200, Json("PartnerView")),
    row(Post, "/v1/admin/products", "Create", |r| r.to(setup::create_product)).takes(ProductRequest::schema).answers(201, Json("Product")),
    row(Get, "/v1/admin/products", "List in creation order", |r| r.to(setup::list_products))
        .kinds(SELLERS_AND_ADMIN)
        .answers(200, Page("Product")),
    row(Get, "/v1/admin/products/{id}", "Read one", |r| r.to(setup::get_product)).kinds(SELLERS_AND_ADMIN).answers(200, Json("Product")),
    row(Patch, "/v1/admin/products/{id}", "Change any field but id", |r| r.to(setup::patch_product))
        .takes(ProductPatch::schema)
        .answers(200, Json("Product")),
    row(Post, "/v1/admin/api-keys", "Create an API key (shown once)", |r| r.to(setup::create_api_key))
        .takes(ApiKeyRequest::schema)
        .answers(201, Json("ApiKeyCreated")),
    row(Get, "/v1/admin/api-keys", "List API keys", |r| r.to(setup::list_api_keys)).answers(200, Page("ApiKeyView")),
    row(Get, "/v1/admin/api-keys/{id}", "Read an API key (no secret)", |r| r.to(setup::get_api_key)).answers(200, Json("ApiKeyView")),
    row(Delete, "/v1/admin/api-keys/{id}", "Revoke", |r| r.to(setup::revoke_api_key)).answers(204, Reply::Empty),
    // Credit lines and holds (section 3)
    row(Post, "/v1/credit-lines", "Register (201) or update (200) a customer's credit line", |r| r.to(credit_lines::register))
        .kinds(&[Provider])
        .idempotent()
        .takes(CreditLineRequest::schema)
        .answers(201, Json("CreditLineView")),
    row(Get, "/v1/credit-lines/{id}", "A credit line", |r| r.to(credit_lines::get_line))
        .kinds(&[Provider, Admin])
        .answers(200, Json("CreditLineView")),
    row(Post, "/v1/credit-lines/{id}/debt-repayments", "The customer repaid the provider part of what was converted", |r| {
        r.to(credit_lines::repay_debt)
    })
    .kinds(&[Provider])
    .idempotent()
    .takes(DebtRepaymentRequest::schema)
    .answers(200, Json("CreditLineView")),
    row(Get, "/v1/holds/{id}", "A hold", |r| r.to(credit_lines::get_hold)).kinds(ALL).answers(200, Json("Hold")),
    // Quotes and orders (section 4)
    row(Post, "/v1/quotes", "Quote a plan", |r| r.to(orders::quote)).kinds(SELLERS).takes(QuoteRequest::schema).answers(200, Json("Quote")),
    row(Post, "/v1/orders", "Place an order: the hold and the funding bank in one transaction", |r| r.to(orders::place))
        .kinds(SELLERS)
        .idempotent()
        .takes(OrderRequest::schema)
        .answers(201, Json("OrderView")),
    row(Get, "/v1/orders", "The caller's orders, newest first (?status=&limit=&cursor=)", |r| r.to(orders::list))
        .kinds(ORDER_READERS)
        .answers(200, Page("OrderView")),
    row(Get, "/v1/orders/{id}", "An order with its hold and plan", |r| r.to(orders::get))
        .kinds(ORDER_READERS)
        .answers(200, Json("OrderView")),
    row(Post, "/v1/orders/{id}/cancel", "Cancel before funding", |r| r.to(orders::cancel))
        .kinds(SELLERS_AND_ADMIN)
        .idempotent()
        .takes(CancelRequest::schema)
        .answers(200, Json("OrderView")),
    row(Post, "/v1/orders/{id}/funding", "Approve (opens the plan) or reject (voids the hold)", |r| r.to(orders::funding))
        .kinds(&[Bank])
        .idempotent()
        .takes(FundingRequest::schema)
        .answers(200, Json("OrderView")),
    row(Get, "/v1/orders/{id}/borrower", "The borrower in clear, for the order's bank; audited", |r| r.to(orders::borrower))
        .kinds(&[Bank])
        .answers(200, Json("Borrower")),
    // Plans (section 5) and end of day (section 6)
    row(Get, "/v1/plans/{id}", "A plan with its installments", |r| r.to(plans::get)).kinds(ORDER_READERS).answers(200, Json("PlanView")),
    row(Get, "/v1/plans/{id}/payoff", "The payoff as of a date (?as_of=)", |r| r.to(plans::payoff))
        .kinds(BANK_OR_ADMIN)
        .answers(200, Json("PayoffView")),
    row(Post, "/v1/plans/{id}/repayments", "Record a repayment", |r| r.to(plans::repay))
        .kinds(BANK_OR_ADMIN)
        .idempotent()
        .takes(RepaymentRequest::schema)
        .answers(201, Json("RepaymentView")),
    row(Post, "/v1/plans/{id}/accelerate", "Declare the whole loan due", |r| r.to(plans::accelerate))
        .kinds(BANK_OR_ADMIN)
        .idempotent()
        .takes(AccelerateRequest::schema)
        .answers(200, Json("PlanView")),
    row(Post, "/v1/admin/eod", "Close a business date", |r| r.to(plans::eod)).takes(EodRequest::schema).answers(200, Json("EodSummary")),
    // Admin operations and notices (sections 7 and 10)
    row(Get, "/v1/admin/ledger/verify", "Check every ledger invariant", |r| r.to(admin::verify)).answers(200, Json("Report")),
    row(Get, "/v1/admin/audit-log", "Reads of personal data", |r| r.to(admin::audit_log)).answers(200, Page("AuditEntry")),
    row(Get, "/v1/admin/notices", "Notices with their delivery state (?state=&recipient=<kind>:<id>), in creation order", |r| {
        r.to(admin::admin_notices)
    })
    .answers(200, Page("AdminNotice")),
    row(Get, "/v1/admin/notices/{id}", "One notice with its delivery state", |r| r.to(admin::admin_notice))
        .answers(200, Json("AdminNotice")),
    row(Post, "/v1/admin/notices/{id}/redeliver", "Deliver a notice again: pending, attempts reset, due now", |r| r.to(admin::redeliver))
        .answers(202, Json("AdminNotice")),
    row(Get, "/v1/notices", "The caller's notices in order (?after=<notice id>&limit=)", |r| r.to(admin::notices))
        .kinds(ALL)
        .answers(200, Page("Notice")),
    // Reports (section 8)
    row(Get, "/v1/reconciliation/{business_date}", "A bank's movements booked on a date (JSON, or CSV with Accept: text/csv)", |r| {
        r.to(reports::reconciliation)
    })
    .kinds(BANK_OR_ADMIN)
    .answers(200, JsonOrCsv("Reconciliation")),
    row(Get, "/v1/partners/{id}/statement", "A partner's monthly statement by agent (?month=YYYY-MM)", |r| r.to(reports::statement))
        .kinds(&[Partner, Admin])
        .answers(200, Json("Statement")),
    // The provider's confirmation of each hold (v2, section 12)
    row(Post, "/v1/holds/{id}/acknowledge", "Show the customer where to sign: the hold stays pending", |r| r.to(holds::acknowledge))
        .kinds(&[Provider])
        .idempotent()
        .takes(AcknowledgeRequest::schema)
        .answers(200, Json("Hold")),
    row(Post, "/v1/holds/{id}/confirm", "The line is frozen: the hold becomes active, the bank is asked to fund", |r| r.to(holds::confirm))
        .kinds(&[Provider])
        .idempotent()
        .takes(ConfirmRequest::schema)
        .answers(200, Json("Hold")),
    row(Post, "/v1/holds/{id}/decline", "The provider refuses: the hold is voided, the order rejected", |r| r.to(holds::decline))
        .kinds(&[Provider])
        .idempotent()
        .takes(DeclineRequest::schema)
        .answers(200, Json("Hold")),
    // Operations API (section 16)
    row(Get, "/v1/admin/portfolio", "Each bank's exposure and plans, each provider's lines and holds, and their sums, now", |r| {
        r.to(operations::portfolio)
    })
    .answers(200, Json("Portfolio")),
    row(Get, "/v1/admin/aging", "Plans by days past due (?as_of=&bank_id=); a closed date from its snapshot", |r| r.to(operations::aging))
        .answers(200, Json("Aging")),
    row(Get, "/v1/admin/eod-runs", "Every end-of-day run, newest first (?limit=&cursor=)", |r| r.to(operations::eod_runs))
        .answers(200, Page("EodRunView")),
    row(Get, "/v1/admin/search", "Orders by out_order_no, loan_no or engine id (?q=), newest first, at most 200", |r| {
        r.to(operations::search)
    })
    .answers(200, Json("SearchResult")),
    row(Post, "/v1/admin/notices/redeliver", "Deliver every matching dead notice again, attempts reset", |r| r.to(operations::redeliver))
        .takes(RedeliverRequest::schema)
        .answers(202, Json("Redelivered")),
    // Write-off and recoveries (v2, section 14)
    row(Post, "/v1/plans/{id}/write-off", "Write off what the hold could not cover of a defaulted plan", |r| r.to(write_offs::write_off))
        .kinds(BANK_OR_ADMIN)
        .idempotent()
        .takes(WriteOffRequest::schema)
        .answers(200, Json("PlanView")),
    row(Post, "/v1/plans/{id}/recoveries", "Record money collected on a written-off plan", |r| r.to(write_offs::record_recovery))
        .kinds(BANK_OR_ADMIN)
        .idempotent()
        .takes(RecoveryRequest::schema)
        .answers(201, Json("RecoveryView")),
    row(Get, "/v1/plans/{id}/recoveries", "A written-off plan's recoveries, oldest first", |r| r.to(write_offs::recoveries))
        .kinds(ORDER_READERS)
        .answers(200, Page("RecoveryView")),
    // Device returns (v2, section 13)
    row(Post, "/v1/orders/{id}/returns", "Ask to return a funded order's device: the plan is frozen until its bank decides", |r| {
        r.to(returns::request)
    })
    .kinds(SELLERS_AND_ADMIN)
    .idempotent()
    .takes(ReturnRequest::schema)
    .answers(201, Json("ReturnView")),
    row(Get, "/v1/orders/{id}/returns", "An order's returns, newest first", |r| r.to(returns::of_order))
        .kinds(ORDER_READERS)
        .answers(200, Page("ReturnView")),
    row(Post, "/v1/returns/{id}/decision", "Complete (the plan is returned) or reject a requested return", |r| r.to(returns::decide))
        .kinds(&[Bank])
        .idempotent()
        .takes(ReturnDecisionRequest::schema)
        .answers(200, Json("ReturnView")),
    row(Get, "/v1/returns/{id}", "A return", |r| r.to(returns::get)).kinds(ORDER_READERS).answers(200, Json("ReturnView")),
    // The provider's settlement file (v2, section 15)
    row(
        Get,
        "/v1/providers/{id}/settlement/{business_date}",
        "A provider's hold and line movements booked on a date (JSON, or CSV)",
        |r| r.to(reports::settlement),
    )
    .kinds(&[Provider, Admin])
    .answers(200, JsonOrCsv("Settlement")),
];

/// Registers every endpoint: one resource per path (its other methods answer 405), one route per
/// row, each behind its row's principal check.
pub fn register(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    for e in ENDPOINTS {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    // A path without parameters first, so that `/v1/admin/notices/redeliver` is not taken for
    // `/v1/admin/notices/{id}` (actix tries resources in the order they are registered).
    paths.sort_by_key(|p| p.contains('{'));
    for path in paths {
        let mut resource = super::resource(path);
        for e in ENDPOINTS.iter().filter(|e| e.path == path) {
            let route = (e.handler)(e.verb.route());
            resource = match e.access {
                Access::Public => resource.route(route),
                Access::Kinds(kinds) => resource.route(route.wrap(from_fn(move |req, next| require(kinds, req, next)))),
            };
        }
        cfg.service(resource);
    }
}

/// `403 forbidden` unless the caller is of one of `kinds`. It runs once the route matched (so
/// 404 and 405 come first) and before the handler reads the idempotency key or the body (API.md
/// section 1's order of checks).
async fn require(
    kinds: &'static [PrincipalKind],
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let allowed = req.extensions().get::<Caller>().map(|c| c.principal.require(kinds));
    match allowed {
        Some(Ok(())) => next.call(req).await,
        Some(Err(e)) => Ok(req.into_response(e.error_response())),
        // The auth middleware puts a caller on every request to a keyed path; without one, 401.
        None => Ok(req.into_response(super::auth::unauthenticated().error_response())),
    }
}

/// The methods a path pattern (`/v1/orders/{id}`) takes, for the `Allow` header of a 405.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOWED: std::sync::OnceLock<std::collections::HashMap<&'static str, String>> = std::sync::OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| {
        let mut map: std::collections::HashMap<&'static str, String> = std::collections::HashMap::new();
        for e in ENDPOINTS {
            let methods = map.entry(e.path).or_default();
            if !methods.is_empty() {
                methods.push_str(", ");
            }
            methods.push_str(e.verb.as_str());
        }
        map
    });
    allowed.get(pattern).map(String::as_str)
}

/// Paths answered without a key. Public paths have no parameters, so the request's path is the pattern.
pub fn is_public(path: &str) -> bool {
    ENDPOINTS.iter().any(|e| matches!(e.access, Access::Public) && e.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_path_is_one_row() {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            let twin = ENDPOINTS[i + 1..].iter().find(|o| o.verb == e.verb && o.path == e.path);
            assert!(twin.is_none(), "{} {} has two rows", e.verb.as_str(), e.path);
        }
    }

    #[test]
    fn allow_lists_a_paths_methods_in_row_order() {
        assert_eq!(allowed_methods("/v1/admin/providers/{id}"), Some("GET, PATCH"));
        assert_eq!(allowed_methods("/v1/orders"), Some("POST, GET"));
        assert_eq!(allowed_methods("/openapi.json"), Some("GET"));
        assert_eq!(allowed_methods("/v1/nothing"), None);
    }

    #[test]
    fn only_the_operations_endpoints_are_public() {
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(is_public(path), "{path}");
        }
        assert!(!is_public("/v1/orders"));
        assert!(!is_public("/v1/admin/providers"));
    }
}
