//! The OpenAPI 3 document, generated from the code: the route table below and the `ToSchema`
//! types the handlers answer with.

use crate::db::setup::{Bank, Product, ProductTerm, Provider, Store};
use crate::domain::money::Amount;
use crate::service::setup::{ApiKeyView, PartnerView};
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required};
use utoipa::{PartialSchema, ToSchema};

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .pattern(Some(r"^[0-9]{1,12}\.[0-9]{2}$"))
            .description(Some("CNY yuan with exactly 2 decimals; requests also take 0-2 decimals"))
            .into()
    }
}

impl ToSchema for Amount {}

/// One operation of the route table: method, path, summary, request schema, success status and schema, idempotent.
struct Route {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: &'static str,
    response: Option<&'static str>,
    idempotent: bool,
}

const fn r(
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: &'static str,
    response: Option<&'static str>,
    idempotent: bool,
) -> Route {
    Route { method, path, summary, request, status, response, idempotent }
}

fn route_table() -> Vec<Route> {
    use HttpMethod::*;
    let mut v = vec![
        r(Get, "/healthz", "Process up", None, "200", Some("Status"), false),
        r(Get, "/readyz", "Database reachable and migrated (else 503 with the same schema)", None, "200", Some("Status"), false),
        r(Get, "/metrics", "Prometheus metrics", None, "200", Some(TEXT_PLAIN), false),
    ];
    for (plural, schema) in
        [("providers", "Provider"), ("banks", "Bank"), ("stores", "Store"), ("partners", "PartnerView"), ("products", "Product")]
    {
        let base: &'static str = Box::leak(format!("/v1/admin/{plural}").into_boxed_str());
        let one: &'static str = Box::leak(format!("/v1/admin/{plural}/{{id}}").into_boxed_str());
        v.push(r(Post, base, "Create", Some("object"), "201", Some(schema), false));
        v.push(r(Get, base, "List in creation order", None, "200", Some(page(schema)), false));
        v.push(r(Get, one, "Read one", None, "200", Some(schema), false));
        v.push(r(Patch, one, "Change any field but id", Some("object"), "200", Some(schema), false));
    }
    v.push(r(Post, "/v1/admin/providers/{id}/webhook-secret", "Rotate the webhook secret", None, "200", Some("WebhookSecret"), false));
    v.push(r(Post, "/v1/admin/banks/{id}/webhook-secret", "Rotate the webhook secret", None, "200", Some("WebhookSecret"), false));
    v.push(r(Post, "/v1/admin/api-keys", "Create an API key (shown once)", Some("object"), "201", Some("ApiKeyCreated"), false));
    v.push(r(Get, "/v1/admin/api-keys", "List API keys", None, "200", Some(page("ApiKeyView")), false));
    v.push(r(Get, "/v1/admin/api-keys/{id}", "Read an API key (no secret)", None, "200", Some("ApiKeyView"), false));
    v.push(r(Delete, "/v1/admin/api-keys/{id}", "Revoke", None, "204", None, false));
    v.push(r(
        Post,
        "/v1/credit-lines",
        "Register (201) or update (200) a customer's credit line",
        Some("object"),
        "201",
        Some("CreditLineView"),
        true,
    ));
    v.push(r(Get, "/v1/credit-lines/{id}", "A credit line", None, "200", Some("CreditLineView"), false));
    v.push(r(
        Post,
        "/v1/credit-lines/{id}/debt-repayments",
        "The customer repaid the provider part of what was converted",
        Some("object"),
        "200",
        Some("CreditLineView"),
        true,
    ));
    v.push(r(Get, "/v1/holds/{id}", "A hold", None, "200", Some("Hold"), false));
    v.push(r(Post, "/v1/quotes", "Quote a plan", Some("object"), "200", Some("Quote"), false));
    v.push(r(
        Post,
        "/v1/orders",
        "Place an order: the hold and the funding bank in one transaction",
        Some("object"),
        "201",
        Some("OrderView"),
        true,
    ));
    v.push(r(
        Get,
        "/v1/orders",
        "The caller's orders, newest first (?status=&limit=&cursor=)",
        None,
        "200",
        Some(page("OrderView")),
        false,
    ));
    v.push(r(Get, "/v1/orders/{id}", "An order with its hold and plan", None, "200", Some("OrderView"), false));
    v.push(r(Post, "/v1/orders/{id}/cancel", "Cancel before funding", Some("object"), "200", Some("OrderView"), true));
    v.push(r(
        Post,
        "/v1/orders/{id}/funding",
        "Approve (opens the plan) or reject (voids the hold)",
        Some("object"),
        "200",
        Some("OrderView"),
        true,
    ));
    v.push(r(
        Get,
        "/v1/orders/{id}/borrower",
        "The borrower in clear, for the order's bank; audited",
        None,
        "200",
        Some("Borrower"),
        false,
    ));
    v.push(r(Get, "/v1/plans/{id}", "A plan with its installments", None, "200", Some("PlanView"), false));
    v.push(r(Get, "/v1/plans/{id}/payoff", "The payoff as of a date (?as_of=)", None, "200", Some("PayoffView"), false));
    v.push(r(Post, "/v1/plans/{id}/repayments", "Record a repayment", Some("object"), "201", Some("RepaymentView"), true));
    v.push(r(Post, "/v1/plans/{id}/accelerate", "Declare the whole loan due", Some("object"), "200", Some("PlanView"), true));
    v.push(r(Post, "/v1/admin/eod", "Close a business date", Some("object"), "200", Some("EodSummary"), false));
    v.push(r(Get, "/v1/admin/ledger/verify", "Check every ledger invariant", None, "200", Some("Report"), false));
    v.push(r(Get, "/v1/admin/audit-log", "Reads of personal data", None, "200", Some(page("AuditEntry")), false));
    v.push(r(Get, "/v1/notices", "The caller's notices in order (?after=<notice id>&limit=)", None, "200", Some(page("Notice")), false));
    v.extend(crate::http::extra_routes().into_iter().map(|(m, p, s, req, st, resp, i)| r(m, p, s, req, st, resp, i)));
    for route in &mut v {
        if route.path == "/v1/admin/notices" && route.response.is_none() {
            route.response = Some(page("AdminNotice"));
        }
    }
    v
}

/// The query parameters of a route (API.md): pagination on lists, and each list's filters.
fn query_parameters(route: &Route) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let string = json!({"type": "string"});
    let mut v = Vec::new();
    if route.method == HttpMethod::Get && matches!(route.response, Some(r) if r.starts_with("Page:")) {
        v.push(("limit", json!({"type": "integer", "minimum": 1, "maximum": 200})));
        v.push(("cursor", string.clone()));
    }
    match route.path {
        "/v1/orders" => v.push(("status", string.clone())),
        "/v1/notices" => v.push(("after", string.clone())),
        "/v1/admin/notices" => {
            v.push(("state", string.clone()));
            v.push(("recipient", string.clone()));
        }
        "/v1/plans/{id}/payoff" => v.push(("as_of", json!({"type": "string", "format": "date"}))),
        "/v1/partners/{id}/statement" => v.push(("month", json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}))),
        _ => {}
    }
    v
}

/// The JSON schema of a route's request body, from API.md sections 1-6: every field typed, the
/// required ones required, no other field (`422 invalid_request`). Optional fields may be `null`
/// (absent). The rules no schema says (check characters, Luhn, amounts > 0, known ids, business
/// rules) are the service's, answered with 422.
fn request_schema(route: &Route) -> serde_json::Value {
    use serde_json::{Value, json};
    let money = json!({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$"});
    let rate = json!({"type": "string", "pattern": r"^[0-9]{1,2}(\.[0-9]{1,8})?$"});
    let date = json!({"type": "string", "format": "date"});
    let id = json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{1,63}$"});
    let text = json!({"type": "string", "minLength": 1});
    let ascii = json!({"type": "string", "pattern": "^[!-~]{1,64}$"});
    let int = json!({"type": "integer"});
    let boolean = json!({"type": "boolean"});
    let region = json!({"type": "string", "pattern": "^[0-9]{6}$"});
    let regions = json!({"type": "array", "items": {"type": "string", "pattern": "^([0-9]{2}){1,3}$"}});
    let ids = json!({"type": "array", "items": id.clone()});
    let nullable = |s: &Value| {
        let mut s = s.clone();
        let t = s["type"].clone();
        s["type"] = json!([t, "null"]);
        s
    };
    // An object of `required` and optional fields; `patch`: every field optional, null clears.
    let object = |required: &[(&str, &Value)], optional: &[(&str, &Value)], patch: bool| {
        let mut props = serde_json::Map::new();
        let mut names = Vec::new();
        for (k, s) in required {
            props.insert(k.to_string(), if patch { nullable(s) } else { (*s).clone() });
            names.push(k.to_string());
        }
        for (k, s) in optional {
            props.insert(k.to_string(), nullable(s));
        }
        let mut o = json!({"type": "object", "properties": props, "additionalProperties": false});
        if !patch && !names.is_empty() {
            o["required"] = json!(names);
        }
        o
    };
    let patch = route.method == HttpMethod::Patch;
    let term = object(&[("months", &int), ("rate", &rate)], &[], false);
    let customer = object(&[("id_number", &json!({"type": "string"})), ("phone", &json!({"type": "string"}))], &[("name", &text)], false);
    let principal =
        object(&[("kind", &json!({"type": "string", "enum": ["admin", "store", "partner", "bank", "provider"]}))], &[("id", &id)], false);
    let resource = route.path.trim_start_matches("/v1/admin/").split('/').next().unwrap_or("");
    let with_id = |mut o: Value| {
        // A PATCH may repeat the id (unchanged).
        o["properties"]["id"] = if patch { nullable(&id) } else { id.clone() };
        if !patch {
            let mut req = o["required"].as_array().cloned().unwrap_or_default();
            req.insert(0, json!("id"));
            o["required"] = json!(req);
        }
        o
    };
    match (route.method.clone(), route.path) {
        (HttpMethod::Post | HttpMethod::Patch, _)
            if route.path.starts_with("/v1/admin/") && resource != "api-keys" && resource != "eod" =>
        {
            let body = match resource {
                "providers" => object(&[("name", &text)], &[("webhook_url", &text)], patch),
                "banks" => object(
                    &[("name", &text), ("priority", &int), ("apr_min", &rate), ("apr_max", &rate), ("exposure_limit", &money)],
                    &[("regions", &regions), ("webhook_url", &text)],
                    patch,
                ),
                "stores" => object(&[("name", &text), ("region_code", &region)], &[], patch),
                "partners" => object(
                    &[
                        ("name", &text),
                        ("established_on", &date),
                        ("deposit_paid", &money),
                        ("authorized_providers", &ids),
                        ("major_violation_last_year", &boolean),
                        ("regions", &regions),
                    ],
                    &[],
                    patch,
                ),
                _ => object(
                    &[
                        ("name", &text),
                        ("pricing", &json!({"type": "string", "enum": ["interest", "fee"]})),
                        ("terms", &json!({"type": "array", "items": term})),
                        ("providers", &ids),
                        ("regions", &regions),
                        ("min_principal", &money),
                        ("max_principal", &money),
                    ],
                    &[
                        ("hold_ratio", &rate),
                        ("grace_days", &int),
                        ("penalty_daily_rate", &rate),
                        ("funding_timeout_hours", &int),
                        ("partner_referral_fee", &money),
                        ("active", &boolean),
                    ],
                    patch,
                ),
            };
            with_id(body)
        }
        (_, "/v1/admin/api-keys") => object(&[("principal", &principal)], &[("rate_limit_per_minute", &int)], false),
        (_, "/v1/admin/eod") => object(&[("business_date", &date)], &[], false),
        (_, "/v1/credit-lines") => object(
            &[("customer", &customer), ("limit", &money), ("expires_on", &date)],
            &[("status", &json!({"type": "string", "enum": ["active", "frozen", "closed"]}))],
            false,
        ),
        (_, "/v1/credit-lines/{id}/debt-repayments") => object(&[("amount", &money)], &[], false),
        (_, "/v1/quotes") => {
            object(&[("product_id", &id), ("term_months", &int), ("device_price", &money), ("down_payment", &money)], &[], false)
        }
        (_, "/v1/orders") => {
            let device = object(&[("sku", &text), ("imei", &json!({"type": "string"})), ("price", &money)], &[], false);
            let consent =
                object(&[("method", &json!({"type": "string", "enum": ["provider_app", "sms_otp"]})), ("reference", &text)], &[], false);
            object(
                &[
                    ("out_order_no", &ascii),
                    ("product_id", &id),
                    ("term_months", &int),
                    ("customer", &customer),
                    ("device", &device),
                    ("down_payment", &money),
                ],
                &[("consent", &consent), ("region_code", &region), ("agent_id", &ascii)],
                false,
            )
        }
        (_, "/v1/orders/{id}/cancel") => object(&[], &[("reason", &text)], false),
        (_, "/v1/orders/{id}/funding") => object(
            &[("decision", &json!({"type": "string", "enum": ["approved", "rejected"]}))],
            &[("loan_no", &ascii), ("funded_on", &date), ("reason", &text)],
            false,
        ),
        (_, "/v1/plans/{id}/repayments") => object(&[("amount", &money), ("paid_on", &date), ("reference", &ascii)], &[], false),
        (_, "/v1/plans/{id}/accelerate") => object(&[("as_of", &date), ("reason", &text)], &[], false),
        _ => json!({"type": "object"}),
    }
}

/// The response marker of a plain-text answer (`/metrics`).
const TEXT_PLAIN: &str = "text/plain";

/// The response marker of a list page of `item`: `{data: [item], next_cursor}`.
fn page(item: &str) -> &'static str {
    Box::leak(format!("Page:{item}").into_boxed_str())
}

/// The error statuses an operation may answer besides its success (API.md section 1): every one
/// may be unauthenticated, forbidden, missing, refused as invalid (query or body), over the rate,
/// over the body limit or without its database; (I) endpoints also want their idempotency key
/// (400); what changes state or reads state-dependent results may conflict (409); what takes a
/// body may not get it in time (408).
fn error_statuses(route: &Route) -> Vec<&'static str> {
    if OPEN_PATHS.contains(&route.path) {
        return vec![];
    }
    let mut v = vec!["401", "403", "404", "413", "422", "429", "503"];
    if route.idempotent {
        v.push("400");
    }
    if route.method != HttpMethod::Get || route.path == "/v1/plans/{id}/payoff" {
        v.push("409");
    }
    if route.method != HttpMethod::Get {
        v.push("408");
    }
    v.sort_unstable();
    v
}

/// The paths answered without auth.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// What each error status means, for the document.
fn error_description(status: &str) -> &'static str {
    match status {
        "400" => "idempotency_key_required",
        "401" => "unauthenticated: no, unknown or revoked key",
        "403" => "forbidden: an endpoint not for the caller's kind",
        "404" => "not_found (also an object of someone else)",
        "408" => "request_timeout: the body did not arrive in full within server.body_read_timeout_ms",
        "409" => "already_exists, invalid_state, idempotency_key_in_use, limit_below_exposure, business_date_regression",
        "413" => "payload_too_large",
        "422" => "invalid_request, invalid_amount, invalid_date, … and business refusals",
        "429" => "rate_limited, with Retry-After",
        "503" => "unavailable: the database cannot be reached in time",
        _ => "an error",
    }
}

/// `X-Request-Id`, on every answer.
fn request_id_header() -> Header {
    HeaderBuilder::new().schema(String::schema()).description(Some("the request's id, also in error bodies")).build()
}

/// The `{name}` segments of a path.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// The methods a path pattern (`/v1/orders/{id}`) takes, for the `Allow` header of a 405.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOWED: std::sync::OnceLock<std::collections::HashMap<&'static str, String>> = std::sync::OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| {
        let mut map: std::collections::HashMap<&'static str, String> = std::collections::HashMap::new();
        for route in route_table() {
            let methods = map.entry(route.path).or_default();
            if !methods.is_empty() {
                methods.push_str(", ");
            }
            methods.push_str(&method_name(&route.method).to_ascii_uppercase());
        }
        map
    });
    allowed.get(pattern).map(String::as_str)
}

fn method_name(m: &HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        HttpMethod::Patch => "patch",
        HttpMethod::Head => "head",
        HttpMethod::Options => "options",
        HttpMethod::Trace => "trace",
    }
}

pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in route_table() {
        let mut op = OperationBuilder::new().summary(Some(route.summary)).operation_id(Some(format!(
            "{}{}",
            method_name(&route.method),
            route.path.replace(['/', '{', '}', '-', '.'], "_")
        )));
        for name in path_parameters(route.path) {
            op = op.parameter(
                ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(String::schema())),
            );
        }
        if route.idempotent {
            op = op.parameter(
                ParameterBuilder::new().name("Idempotency-Key").parameter_in(ParameterIn::Header).required(Required::True).schema(Some(
                    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).min_length(Some(1)).max_length(Some(255)),
                )),
            );
        }
        for (name, schema) in query_parameters(&route) {
            let schema: Schema = serde_json::from_value(schema).expect("a query parameter schema");
            op = op.parameter(
                ParameterBuilder::new().name(name).parameter_in(ParameterIn::Query).required(Required::False).schema(Some(schema)),
            );
        }
        if route.request.is_some() {
            let schema: Schema = serde_json::from_value(request_schema(&route)).expect("a request body schema");
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
                    // Every field of a cancellation is optional: no body at all is taken as `{}`.
                    .required(Some(if route.path == "/v1/orders/{id}/cancel" { Required::False } else { Required::True }))
                    .build(),
            ));
        }
        if !OPEN_PATHS.contains(&route.path) {
            op = op.security(SecurityRequirement::new::<&str, [&str; 0], &str>("api_key", []));
        }
        let mut ok = ResponseBuilder::new().description("success").header("X-Request-Id", request_id_header());
        if route.idempotent {
            ok = ok.header(
                "Idempotent-Replayed",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).enum_values(Some(["true"])))
                    .description(Some("on an answer replayed for a retry"))
                    .build(),
            );
        }
        match route.response {
            None => {}
            Some(TEXT_PLAIN) => ok = ok.content("text/plain", ContentBuilder::new().schema(Some(String::schema())).build()),
            Some(schema) => {
                let body: RefOr<Schema> = match schema.strip_prefix("Page:") {
                    Some(item) => ObjectBuilder::new()
                        .property("data", ArrayBuilder::new().items(Ref::from_schema_name(item)))
                        .property("next_cursor", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])))
                        .required("data")
                        .required("next_cursor")
                        .into(),
                    None => Ref::from_schema_name(schema).into(),
                };
                ok = ok.content("application/json", ContentBuilder::new().schema(Some(body)).build());
                if route.path == "/v1/reconciliation/{business_date}" {
                    ok = ok.content("text/csv", ContentBuilder::new().schema(Some(String::schema())).build());
                }
            }
        }
        let mut responses = ResponsesBuilder::new().response(route.status, ok.build());
        if route.path == "/v1/credit-lines" {
            let updated = ResponseBuilder::new()
                .description("an existing line updated")
                .header("X-Request-Id", request_id_header())
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("CreditLineView"))).build());
            responses = responses.response("200", updated);
        }
        if route.path == "/readyz" {
            let down = ResponseBuilder::new()
                .description("the database is unreachable or not migrated")
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Status"))).build());
            responses = responses.response("503", down);
        }
        for status in error_statuses(&route) {
            let mut error = ResponseBuilder::new()
                .description(error_description(status))
                .header("X-Request-Id", request_id_header())
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build());
            if status == "429" {
                error = error.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).pattern(Some("^[0-9]+$")))
                        .build(),
                );
            }
            responses = responses.response(status, error);
        }
        op = op.responses(responses);
        paths = paths.path(route.path, PathItem::new(route.method, op));
    }
    let nullable_string = || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
    let error_schema = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).pattern(Some("^[a-z_]+$")))
                .property("message", String::schema())
                .property("field", nullable_string().description(Some("a JSON path (`terms[1].rate`) or null")))
                .property("request_id", String::schema())
                .property("details", ObjectBuilder::new().schema_type(SchemaType::new(Type::Object)))
                .required("code")
                .required("message")
                .required("field")
                .required("request_id"),
        )
        .required("error");
    let strings = |names: &[&str], optional: &[&str]| {
        let mut o = ObjectBuilder::new();
        for n in names {
            o = o.property(*n, String::schema()).required(*n);
        }
        for n in optional {
            o = o.property(*n, nullable_string());
        }
        o
    };
    let status_schema = strings(&["status"], &["reason"]);
    let api_key_created = strings(&["id", "key", "created_at"], &["revoked_at"])
        .property("principal", ObjectBuilder::new().schema_type(SchemaType::new(Type::Object)))
        .required("principal")
        .property("rate_limit_per_minute", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Integer, Type::Null])));
    let components = ComponentsBuilder::new()
        .schema("Error", error_schema)
        .schema("Status", status_schema)
        .schema("WebhookSecret", strings(&["webhook_secret"], &[]))
        .schema("ApiKeyCreated", api_key_created)
        .schema("Borrower", strings(&["id_number", "phone"], &["name"]))
        .schema("AuditEntry", strings(&["at", "actor", "action", "object_id", "request_id"], &[]))
        .schema_from::<Amount>()
        .schema_from::<Provider>()
        .schema_from::<Bank>()
        .schema_from::<Store>()
        .schema_from::<PartnerView>()
        .schema_from::<ProductTerm>()
        .schema_from::<Product>()
        .schema_from::<ApiKeyView>()
        .schema_from::<crate::service::credit_lines::CreditLineView>()
        .schema_from::<crate::db::orders::Hold>()
        .schema_from::<crate::service::orders::Quote>()
        .schema_from::<crate::service::orders::OrderView>()
        .schema_from::<crate::service::plans::PlanView>()
        .schema_from::<crate::service::plans::PayoffView>()
        .schema_from::<crate::service::plans::RepaymentView>()
        .schema_from::<crate::service::eod::EodSummary>()
        .schema_from::<crate::service::verify::Report>()
        .schema_from::<crate::db::notices::Notice>()
        .schema_from::<crate::service::credit_lines::CustomerMasked>()
        .schema_from::<crate::service::orders::Device>()
        .schema_from::<crate::service::orders::ScheduleLine>()
        .schema_from::<crate::service::plans::InstallmentView>()
        .schema_from::<crate::service::plans::Accelerated>()
        .schema_from::<crate::service::plans::AllocationView>()
        .schema_from::<crate::service::eod::Counted>()
        .schema_from::<crate::service::verify::Checked>()
        .schema_from::<crate::service::verify::Violation>()
        .schema_from::<crate::db::notices::AdminNotice>()
        .schema_from::<crate::service::reports::Movement>()
        .schema_from::<crate::service::reports::Total>()
        .schema_from::<crate::service::reports::Totals>()
        .schema_from::<crate::service::reports::Reconciliation>()
        .schema_from::<crate::service::reports::AgentLine>()
        .schema_from::<crate::service::reports::StatementTotal>()
        .schema_from::<crate::service::reports::Statement>()
        .security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)))
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("creditphone")
                .version("1")
                .description(Some("Pre-authorization engine for carrier credit phone purchase (信用购机)")),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}
