//! The OpenAPI 3 document, generated from the code: the route table below and the `ToSchema`
//! types the handlers answer with.

use crate::db::setup::{Bank, Product, ProductTerm, Provider, Store};
use crate::domain::money::Amount;
use crate::service::setup::{ApiKeyView, PartnerView};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
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
        r(Get, "/healthz", "Process up", None, "200", None, false),
        r(Get, "/readyz", "Database reachable and migrated", None, "200", None, false),
        r(Get, "/metrics", "Prometheus metrics", None, "200", None, false),
    ];
    for (plural, schema) in
        [("providers", "Provider"), ("banks", "Bank"), ("stores", "Store"), ("partners", "PartnerView"), ("products", "Product")]
    {
        let base: &'static str = Box::leak(format!("/v1/admin/{plural}").into_boxed_str());
        let one: &'static str = Box::leak(format!("/v1/admin/{plural}/{{id}}").into_boxed_str());
        v.push(r(Post, base, "Create", Some("object"), "201", Some(schema), false));
        v.push(r(Get, base, "List in creation order", None, "200", None, false));
        v.push(r(Get, one, "Read one", None, "200", Some(schema), false));
        v.push(r(Patch, one, "Change any field but id", Some("object"), "200", Some(schema), false));
    }
    v.push(r(Post, "/v1/admin/providers/{id}/webhook-secret", "Rotate the webhook secret", None, "200", None, false));
    v.push(r(Post, "/v1/admin/banks/{id}/webhook-secret", "Rotate the webhook secret", None, "200", None, false));
    v.push(r(Post, "/v1/admin/api-keys", "Create an API key (shown once)", Some("object"), "201", None, false));
    v.push(r(Get, "/v1/admin/api-keys", "List API keys", None, "200", None, false));
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
    v.push(r(Get, "/v1/orders", "The caller's orders, newest first (?status=&limit=&cursor=)", None, "200", None, false));
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
    v.push(r(Get, "/v1/orders/{id}/borrower", "The borrower in clear, for the order's bank; audited", None, "200", None, false));
    v.push(r(Get, "/v1/plans/{id}", "A plan with its installments", None, "200", Some("PlanView"), false));
    v.push(r(Get, "/v1/plans/{id}/payoff", "The payoff as of a date (?as_of=)", None, "200", Some("PayoffView"), false));
    v.push(r(Post, "/v1/plans/{id}/repayments", "Record a repayment", Some("object"), "201", Some("RepaymentView"), true));
    v.push(r(Post, "/v1/plans/{id}/accelerate", "Declare the whole loan due", Some("object"), "200", Some("PlanView"), true));
    v.push(r(Post, "/v1/admin/eod", "Close a business date", Some("object"), "200", Some("EodSummary"), false));
    v.push(r(Get, "/v1/admin/ledger/verify", "Check every ledger invariant", None, "200", Some("Report"), false));
    v.push(r(Get, "/v1/admin/audit-log", "Reads of personal data", None, "200", None, false));
    v.push(r(Get, "/v1/notices", "The caller's notices in order (?after=<notice id>&limit=)", None, "200", None, false));
    v.extend(crate::http::extra_routes().into_iter().map(|(m, p, s, req, st, resp, i)| r(m, p, s, req, st, resp, i)));
    v
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
        if route.request.is_some() {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(SchemaType::new(Type::Object)))).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(schema) = route.response {
            ok = ok.content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build());
        }
        let error = ResponseBuilder::new()
            .description("an error: {\"error\": {code, message, field, request_id, details?}}")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build());
        let responses = ResponsesBuilder::new().response(route.status, ok).response("default", error);
        op = op.responses(responses);
        paths = paths.path(route.path, PathItem::new(route.method, op));
    }
    let error_schema = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", String::schema())
                .property("message", String::schema())
                .property("field", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])))
                .property("request_id", String::schema())
                .required("code")
                .required("message"),
        )
        .required("error");
    let components = ComponentsBuilder::new()
        .schema("Error", error_schema)
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
