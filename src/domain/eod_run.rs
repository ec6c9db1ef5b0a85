//! What started an end-of-day run (API.md §16 `GET /v1/admin/eod-runs`).

use serde::Serialize;

/// The schedule inside `serve`, `POST /v1/admin/eod`, or `creditphone eod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EodTrigger {
    Schedule,
    Api,
    Cli,
}

impl EodTrigger {
    /// The text stored (`eod_runs.trigger`, sql/V25) and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            EodTrigger::Schedule => "schedule",
            EodTrigger::Api => "api",
            EodTrigger::Cli => "cli",
        }
    }

    pub fn parse(text: &str) -> Option<EodTrigger> {
        [EodTrigger::Schedule, EodTrigger::Api, EodTrigger::Cli].into_iter().find(|t| t.as_str() == text)
    }
}
