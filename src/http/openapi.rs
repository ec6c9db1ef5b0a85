//! The OpenAPI 3 document, generated from the code: the endpoint table ([`super::endpoints`]), the
//! request types it names ([`super::requests`]) and the `ToSchema` types the handlers answer with.

use super::endpoints::{Access, ENDPOINTS, Endpoint, Reply, Verb};
use crate::db::setup::{Bank, Product, ProductTerm, Provider, Store};
use crate::domain::money::Amount;
use crate::service::setup::{ApiKeyView, PartnerView};
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder, Responses, ResponsesBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required};
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

/// The query parameters of a route (API.md): pagination on lists, and each list's filters; each
/// with whether it is required.
fn query_parameters(route: &Endpoint) -> Vec<(&'static str, serde_json::Value, bool)> {
    use serde_json::json;
    let string = json!({"type": "string"});
    let mut v = Vec::new();
    if route.verb == Verb::Get && matches!(route.reply, Reply::Page(_)) {
        v.push(("limit", json!({"type": "integer", "minimum": 1, "maximum": 200}), false));
        let cursor = json!({"type": "string", "pattern": super::CURSOR_PATTERN, "description": "a next_cursor this API answered"});
        v.push(("cursor", cursor, false));
    }
    match route.path {
        "/v1/orders" => v.push(("status", string, false)),
        "/v1/notices" => v.push(("after", json!({"type": "string", "pattern": "^ntc_[0-9]{16}$"}), false)),
        "/v1/admin/notices" => {
            v.push(("state", json!({"type": "string", "enum": crate::service::notices::STATES}), false));
            v.push(("recipient", json!({"type": "string", "pattern": "^(bank|provider|store|partner):[!-~]{1,64}$"}), false));
        }
        "/v1/plans/{id}/payoff" => v.push(("as_of", json!({"type": "string", "format": "date"}), false)),
        "/v1/partners/{id}/statement" => v.push(("month", json!({"type": "string", "pattern": MONTH}), true)),
        "/v1/reconciliation/{business_date}" => v.push(("bank_id", json!({"type": "string", "pattern": REFERENCE_ID}), false)),
        // The operations API (section 16).
        "/v1/admin/aging" => {
            v.push(("as_of", json!({"type": "string", "format": "date"}), false));
            v.push(("bank_id", json!({"type": "string", "pattern": REFERENCE_ID}), false));
        }
        "/v1/admin/search" => v.push(("q", json!({"type": "string", "maxLength": 255, "pattern": SEARCH_TEXT}), true)),
        _ => {}
    }
    v
}

/// A month `YYYY-MM` of a year from 1.
const MONTH: &str = "^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$";
/// A search's `q`: something besides white space, and no control character.
const SEARCH_TEXT: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// A reference-data id (API.md section 1).
const REFERENCE_ID: &str = "^[a-z0-9][a-z0-9_-]{1,63}$";

/// The error statuses an operation may answer besides its success (API.md section 1): every one
/// may be unauthenticated, forbidden, missing, refused as invalid (query or body), over the rate,
/// over the body limit or without its database; (I) endpoints also want their idempotency key
/// (400); what changes state or reads state-dependent results may conflict (409); what takes a
/// body may not get it in time (408).
fn error_statuses(route: &Endpoint) -> Vec<&'static str> {
    if matches!(route.access, Access::Public) {
        return vec![];
    }
    let mut v = vec!["401", "403", "404", "413", "422", "429", "503"];
    if route.idempotent {
        v.push("400");
    }
    if route.verb != Verb::Get || route.path == "/v1/plans/{id}/payoff" {
        v.push("409");
    }
    if route.verb != Verb::Get {
        v.push("408");
    }
    v.sort_unstable();
    v
}

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

/// A path parameter's schema: a business date is a date, every other an id of any form (a
/// malformed one is a missing object, 404).
fn path_schema(name: &str) -> RefOr<Schema> {
    match name {
        "business_date" => ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).format(Some(date_format())).into(),
        _ => String::schema(),
    }
}

fn date_format() -> utoipa::openapi::SchemaFormat {
    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date)
}

/// The OpenAPI method of a verb.
fn method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ENDPOINTS.iter().filter(|e| e.reply != Reply::Document) {
        paths = paths.path(route.path, PathItem::new(method(route.verb), operation(route)));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("creditphone")
                .version("1")
                .description(Some("Pre-authorization engine for carrier credit phone purchase (信用购机)")),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build()
}

/// The operation of one endpoint: its parameters, body, security and answers.
fn operation(route: &Endpoint) -> Operation {
    let id = format!("{}{}", route.verb.as_str().to_ascii_lowercase(), route.path.replace(['/', '{', '}', '-', '.'], "_"));
    let mut op = OperationBuilder::new().summary(Some(route.summary)).operation_id(Some(id));
    for name in path_parameters(route.path) {
        op = op.parameter(
            ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(path_schema(name))),
        );
    }
    if route.idempotent {
        op = op.parameter(
            ParameterBuilder::new().name("Idempotency-Key").parameter_in(ParameterIn::Header).required(Required::True).schema(Some(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::String))
                    .min_length(Some(1))
                    .max_length(Some(255))
                    // API.md §1: visible ASCII only (what `idempotency::parse_key` accepts).
                    .pattern(Some("^[!-~]{1,255}$")),
            )),
        );
    }
    for (name, schema, required) in query_parameters(route) {
        let schema: Schema = serde_json::from_value(schema).expect("a query parameter schema");
        let required = if required { Required::True } else { Required::False };
        op = op.parameter(ParameterBuilder::new().name(name).parameter_in(ParameterIn::Query).required(required).schema(Some(schema)));
    }
    if route.request.is_some() {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", ContentBuilder::new().schema(route.request.map(|schema| schema())).build())
                // Every field of a cancellation is optional: no body at all is taken as `{}`.
                .required(Some(if route.path == "/v1/orders/{id}/cancel" { Required::False } else { Required::True }))
                .build(),
        ));
    }
    if !matches!(route.access, Access::Public) {
        op = op.security(SecurityRequirement::new::<&str, [&str; 0], &str>("api_key", []));
    }
    op.responses(responses(route)).build()
}

/// The success answer of an endpoint, by its row's reply.
fn success(route: &Endpoint) -> Response {
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
    let json = |body: RefOr<Schema>| ContentBuilder::new().schema(Some(body)).build();
    let text = || ContentBuilder::new().schema(Some(String::schema())).build();
    match route.reply {
        Reply::Empty | Reply::Document => {}
        Reply::Text => ok = ok.content("text/plain", text()),
        Reply::Json(schema) => ok = ok.content("application/json", json(Ref::from_schema_name(schema).into())),
        Reply::JsonOrCsv(schema) => {
            ok = ok.content("application/json", json(Ref::from_schema_name(schema).into())).content("text/csv", text())
        }
        Reply::Page(item) => {
            let page = ObjectBuilder::new()
                .property("data", ArrayBuilder::new().items(Ref::from_schema_name(item)))
                .property("next_cursor", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])))
                .required("data")
                .required("next_cursor");
            ok = ok.content("application/json", json(page.into()));
        }
    }
    ok.build()
}

/// Every answer of an endpoint: its success, the other successes some have, and its errors.
fn responses(route: &Endpoint) -> Responses {
    let mut responses = ResponsesBuilder::new().response(route.status.to_string(), success(route));
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
    for status in error_statuses(route) {
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
    responses.build()
}

/// The named schemas: those written here, and the `ToSchema` types the handlers answer with.
fn components() -> Components {
    answer_types(written_here(ComponentsBuilder::new()))
        .security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)))
        .build()
}

/// The answers without a type of their own: errors, statuses, secrets shown once.
fn written_here(components: ComponentsBuilder) -> ComponentsBuilder {
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
    components
        .schema("Error", error_schema)
        .schema("Status", status_schema)
        .schema("WebhookSecret", strings(&["webhook_secret"], &[]))
        .schema("ApiKeyCreated", api_key_created)
        .schema("Borrower", strings(&["id_number", "phone"], &["name"]))
        .schema("AuditEntry", strings(&["at", "actor", "action", "object_id", "request_id"], &[]))
}

/// The `ToSchema` types the handlers answer with, and the types they refer to.
fn answer_types(components: ComponentsBuilder) -> ComponentsBuilder {
    use crate::service::{credit_lines, eod, orders, plans, reports, verify};
    components
        .schema_from::<Amount>()
        .schema_from::<Provider>()
        .schema_from::<Bank>()
        .schema_from::<Store>()
        .schema_from::<PartnerView>()
        .schema_from::<ProductTerm>()
        .schema_from::<Product>()
        .schema_from::<ApiKeyView>()
        .schema_from::<credit_lines::CreditLineView>()
        .schema_from::<crate::db::orders::Hold>()
        .schema_from::<orders::Quote>()
        .schema_from::<orders::OrderView>()
        .schema_from::<plans::PlanView>()
        .schema_from::<plans::PayoffView>()
        .schema_from::<plans::RepaymentView>()
        .schema_from::<eod::EodSummary>()
        .schema_from::<verify::Report>()
        .schema_from::<crate::db::notices::Notice>()
        .schema_from::<credit_lines::CustomerMasked>()
        .schema_from::<orders::Device>()
        .schema_from::<orders::ScheduleLine>()
        .schema_from::<plans::InstallmentView>()
        .schema_from::<plans::Accelerated>()
        .schema_from::<plans::AllocationView>()
        .schema_from::<eod::Counted>()
        .schema_from::<verify::Checked>()
        .schema_from::<verify::Violation>()
        .schema_from::<crate::db::notices::AdminNotice>()
        .schema_from::<reports::Movement>()
        .schema_from::<reports::Total>()
        .schema_from::<reports::Totals>()
        .schema_from::<reports::Reconciliation>()
        .schema_from::<reports::AgentLine>()
        .schema_from::<reports::StatementTotal>()
        .schema_from::<reports::Statement>()
        .schema_from::<crate::service::ops::Portfolio>()
        .schema_from::<crate::service::ops::PlanCounts>()
        .schema_from::<crate::service::ops::BankPortfolio>()
        .schema_from::<crate::service::ops::ProviderPortfolio>()
        .schema_from::<crate::service::ops::PortfolioTotals>()
        .schema_from::<crate::service::ops::Aging>()
        .schema_from::<crate::domain::aging::BucketView>()
        .schema_from::<crate::service::ops::EodRunView>()
        .schema_from::<crate::service::ops::SearchResult>()
        .schema_from::<crate::service::ops::Redelivered>()
        .schema_from::<plans::WrittenOffView>()
        .schema_from::<crate::service::write_offs::RecoveryView>()
        .schema_from::<crate::service::returns::ReturnView>()
        .schema_from::<crate::service::settlement::Settlement>()
        .schema_from::<crate::service::settlement::SettlementMovement>()
        .schema_from::<crate::service::settlement::HeldDrawn>()
        .schema_from::<crate::service::settlement::SettlementTotal>()
        .schema_from::<crate::service::settlement::Payable>()
}
