//! Operations endpoints, answered without auth: liveness, readiness, metrics, the OpenAPI document.

use super::State;
use actix_web::HttpResponse;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 while the database answers with every migration applied; 503 otherwise, recovering by itself.
pub(super) async fn readyz(state: State) -> HttpResponse {
    if crate::db::ready(&state.pool).await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "reason": "database unreachable or not migrated" }))
    }
}

pub(super) async fn metrics(state: State) -> HttpResponse {
    state.metrics.observe_pool(state.pool.status());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}
