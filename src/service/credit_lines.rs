//! Credit lines (API.md section 3): the whitelist registered by providers, debt repayments, holds.

use super::Deps;
use super::lifecycle::Effects;
use crate::auth::{Principal, PrincipalKind, new_object_id};
use crate::db::credit_lines::{self as lines, CreditLine, NewLine};
use crate::db::journal::{Entry, Refs, account};
use crate::db::{self, Tx};
use crate::domain::identity::{IdNumber, Phone};
use crate::domain::money::Amount;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Answer, IdempotentRequest};
use actix_web::http::StatusCode;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::status::LineReading;
pub use crate::domain::status::LineStatus;

pub struct Registration {
    pub id_number: IdNumber,
    pub phone: Phone,
    pub name: Option<String>,
    pub limit: Amount,
    pub expires_on: NaiveDate,
    pub status: Option<LineStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerMasked {
    pub id_number_masked: String,
    pub phone_masked: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreditLineView {
    pub id: String,
    pub provider_id: String,
    pub customer: CustomerMasked,
    pub limit: Amount,
    pub available: Amount,
    pub held: Amount,
    /// v2 (API.md §12): the part of `held` in holds awaiting their provider's confirmation.
    pub held_pending: Amount,
    pub drawn: Amount,
    pub expires_on: NaiveDate,
    /// active, frozen, closed, or expired (expires_on before today).
    #[schema(value_type = String)]
    pub status: LineReading,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The line as answered; its status reads `expired` once `expires_on` is before `today`.
pub fn view(l: CreditLine, today: NaiveDate, held_pending: Amount) -> CreditLineView {
    let status = l.status.reading(l.expires_on, today);
    CreditLineView {
        available: l.available(),
        id: l.id,
        provider_id: l.provider_id,
        customer: CustomerMasked { id_number_masked: l.id_number_masked, phone_masked: l.phone_masked },
        limit: l.limit,
        held: l.held,
        held_pending,
        drawn: l.drawn,
        expires_on: l.expires_on,
        status,
        created_at: l.created_at,
        updated_at: l.updated_at,
    }
}

/// What of the line's held awaits confirmation (API.md §12).
async fn held_pending(c: &impl crate::db::Db, line_id: &str) -> ApiResult<Amount> {
    Ok(Amount::from_fen(crate::db::holds::held_pending(c, line_id).await?))
}

/// The encrypted identity copy: the values as given, for the funding bank alone.
pub fn seal_identity(state: &Deps, id_number: &IdNumber, phone: &Phone, name: Option<&str>) -> Vec<u8> {
    let plain = json!({ "id_number": id_number.as_str(), "phone": phone.as_str(), "name": name });
    state.pii.encrypt(plain.to_string().as_bytes())
}

/// Moves the line's limit in the journal by the signed `delta_fen`.
fn limit_entry(booked_on: NaiveDate, line_id: &str, delta_fen: i64) -> Entry {
    let mut e = Entry::new("line.limit_changed", booked_on, Refs::new().line(line_id));
    if delta_fen > 0 {
        e.transfer(account::line_limit_source(line_id), account::line_available(line_id), delta_fen);
    } else {
        e.transfer(account::line_available(line_id), account::line_limit_source(line_id), -delta_fen);
    }
    e
}

/// `POST /v1/credit-lines`: registers (201) or updates (200) the provider's line for this customer.
#[tracing::instrument(skip_all, fields(provider_id = %provider_id))]
pub async fn register(state: &Deps, provider_id: &str, request: &IdempotentRequest, r: Registration) -> ApiResult<Answer> {
    let id_hash = state.pii.lookup_hash(r.id_number.as_str());
    let phone_hash = state.pii.lookup_hash(r.phone.as_str());
    let sealed = seal_identity(state, &r.id_number, &r.phone, r.name.as_deref());
    idempotency::execute(
        &state.pool,
        request,
        async |_tx: &Tx<'_>| Ok(()),
        async |tx: &Tx<'_>, ()| {
            let booked_on = db::business_days::booking_date(tx, state.clock.today()).await?;
            if let Some(current) = lines::lock_by_customer(tx, provider_id, &id_hash).await? {
                // Closed is final (API.md §3): any re-registration is refused, before the limit is looked at.
                if current.status == LineStatus::Closed {
                    return Err(ApiError::invalid_state("the line is closed; a closed line cannot be registered again"));
                }
                let status = r.status.unwrap_or(current.status);
                let exposure = current.held + current.drawn;
                if r.limit < exposure {
                    return Err(ApiError::new(
                        ErrorCode::LimitBelowExposure,
                        format!("the limit may not go below held + drawn = {exposure}"),
                    )
                    .field("limit")
                    .details(json!({ "held": current.held, "drawn": current.drawn })));
                }
                let updated =
                    lines::update_registration(tx, &current.id, &phone_hash, &r.phone.masked(), &sealed, r.limit, r.expires_on, status)
                        .await?;
                limit_entry(booked_on, &current.id, r.limit.fen() - current.limit.fen()).post(tx).await?;
                assert_eq!(updated.held, current.held, "re-registration never moves held");
                let pending = held_pending(tx, &updated.id).await?;
                return Ok((StatusCode::OK, view(updated, state.clock.today(), pending)));
            }
            let id = new_object_id("line");
            let status = r.status.unwrap_or(LineStatus::Active);
            let new = NewLine {
                id: &id,
                provider_id,
                id_number_hash: &id_hash,
                id_number_masked: &r.id_number.masked(),
                phone_hash: &phone_hash,
                phone_masked: &r.phone.masked(),
                identity_sealed: &sealed,
                limit: r.limit,
                expires_on: r.expires_on,
                status,
            };
            let Some(created) = lines::insert(tx, &new).await? else {
                // Another request registered this customer at the same moment: run again and update it.
                return Err(ApiError::retry("a concurrent registration of this customer"));
            };
            limit_entry(booked_on, &id, r.limit.fen()).post(tx).await?;
            Ok((StatusCode::CREATED, view(created, state.clock.today(), Amount::ZERO)))
        },
    )
    .await
}

/// The line, if the caller may see it (its provider, admin); else 404.
#[tracing::instrument(skip_all, fields(line_id = %id))]
pub async fn get(state: &Deps, caller: &Principal, id: &str) -> ApiResult<CreditLineView> {
    let client = state.pool.get().await?;
    let line = lines::get(&**client, id).await?.ok_or_else(ApiError::not_found)?;
    if !caller.is_admin() && !caller.is(PrincipalKind::Provider, &line.provider_id) {
        return Err(ApiError::not_found());
    }
    let pending = held_pending(&**client, &line.id).await?;
    Ok(view(line, state.clock.today(), pending))
}

/// `POST /v1/credit-lines/{id}/debt-repayments`: the customer repaid the provider part of what was converted.
#[tracing::instrument(skip_all, fields(line_id = %line_id))]
pub async fn repay_debt(state: &Deps, caller: &Principal, line_id: &str, request: &IdempotentRequest, amount: Amount) -> ApiResult<Answer> {
    idempotency::execute(
        &state.pool,
        request,
        async |tx: &Tx<'_>| {
            let line = lines::get(tx, line_id).await?.ok_or_else(ApiError::not_found)?;
            if !caller.is(PrincipalKind::Provider, &line.provider_id) {
                return Err(ApiError::not_found());
            }
            Ok(())
        },
        async |tx: &Tx<'_>, ()| {
            let line = lines::lock(tx, line_id).await?.ok_or_else(ApiError::not_found)?;
            if amount > line.drawn {
                return Err(ApiError::new(ErrorCode::Overpayment, format!("more than the drawn {}", line.drawn))
                    .field("amount")
                    .details(json!({ "drawn": line.drawn })));
            }
            let booked_on = db::business_days::booking_date(tx, state.clock.today()).await?;
            let id = new_object_id("drp");
            lines::insert_debt_repayment(tx, &id, line_id, amount, booked_on).await?;
            let mut fx = Effects::default();
            fx.repay_debt(line_id, amount, booked_on, &id);
            let after = fx.apply(tx).await?.lines.remove(line_id).expect("apply wrote the line it moved");
            assert_eq!(after.drawn.fen(), line.drawn.fen() - amount.fen(), "drawn fell by the repayment");
            let pending = held_pending(tx, &after.id).await?;
            Ok((StatusCode::OK, view(after, state.clock.today(), pending)))
        },
    )
    .await
}
