//! The operations console under `/console/`, served by the same binary: server-rendered pages
//! (`pages`), a signed session cookie (`session`), zh-CN or English (`text`), and one vendored,
//! pinned htmx file embedded in the binary. Every action goes through the same service functions
//! as the API and is written to the audit log with the admin key's id.

pub mod detail;
pub mod handlers;
pub mod pages;
pub mod session;
pub mod text;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, web};

/// htmx 2.0.11, the npm package's `dist/htmx.min.js` (`npm pack htmx.org@2.0.11`; sha256
/// d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717), 0BSD licensed.
pub const HTMX: &str = include_str!("../../assets/console/htmx-2.0.11.min.js");
pub const CSS: &str = include_str!("../../assets/console/console.css");

/// Paths of the console: answered by its own sign-in, never by the API's keys.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Every console route, behind its security headers.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use handlers as h;
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(security_headers))
            .route("", web::get().to(h::root))
            .route("/", web::get().to(h::root))
            .route("/assets/htmx-2.0.11.min.js", web::get().to(|| asset(HTMX, "text/javascript; charset=utf-8")))
            .route("/assets/console.css", web::get().to(|| asset(CSS, "text/css; charset=utf-8")))
            .route("/sign-in", web::get().to(h::sign_in_page))
            .route("/sign-in", web::post().to(h::sign_in))
            .route("/sign-out", web::post().to(h::sign_out))
            .route("/lang", web::get().to(h::switch_lang))
            .route("/overview", web::get().to(h::overview))
            .route("/orders", web::get().to(h::orders))
            .route("/orders/{id}", web::get().to(h::order))
            .route("/notices", web::get().to(h::notices))
            .route("/notices/redeliver-all", web::post().to(h::redeliver_all))
            .route("/notices/{id}", web::get().to(h::notice))
            .route("/notices/{id}/redeliver", web::post().to(h::redeliver_one))
            .route("/eod", web::get().to(h::eod))
            .route("/eod/confirm", web::post().to(h::eod_confirm))
            .route("/eod/run", web::post().to(h::eod_run))
            .route("/aging", web::get().to(h::aging))
            .route("/reference", web::get().to(h::reference))
            .default_service(web::to(|| async { HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found") })),
    );
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).insert_header((header::CACHE_CONTROL, "public, max-age=86400")).body(body)
}

/// No inline script or style, no framing, no referrer to other sites, no sniffing; pages are not cached.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
               frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
