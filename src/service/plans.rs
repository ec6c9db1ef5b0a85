//! Plan views shared by orders and the plan endpoints.

use crate::db::plans::{InstallmentRow, Plan};
use crate::db::setup::rate_string;
use crate::domain::money::Amount;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallmentView {
    pub seq: u32,
    pub due_on: NaiveDate,
    pub principal: Amount,
    pub interest: Amount,
    pub fee: Amount,
    pub penalty: Amount,
    pub paid_principal: Amount,
    pub paid_interest: Amount,
    pub paid_fee: Amount,
    pub paid_penalty: Amount,
    pub compensated: Amount,
    pub waived: Amount,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accelerated {
    pub as_of: NaiveDate,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub order_id: String,
    pub bank_id: String,
    pub loan_no: String,
    pub principal: Amount,
    pub pricing: String,
    pub rate: String,
    pub apr_irr: String,
    pub term_months: i32,
    pub funded_on: NaiveDate,
    pub status: String,
    pub outstanding_principal: Amount,
    pub compensated: Amount,
    pub accelerated: Option<Accelerated>,
    pub installments: Vec<InstallmentView>,
}

pub fn installment_view(row: &InstallmentRow) -> InstallmentView {
    let s = &row.state;
    InstallmentView {
        seq: s.seq,
        due_on: s.due_on,
        principal: s.principal,
        interest: s.interest,
        fee: s.fee,
        penalty: s.penalty,
        paid_principal: s.paid_principal,
        paid_interest: s.paid_interest,
        paid_fee: s.paid_fee,
        paid_penalty: s.paid_penalty,
        compensated: s.compensated,
        waived: s.waived,
        status: row.status.clone(),
    }
}

pub fn plan_view(p: Plan, installments: &[InstallmentRow]) -> PlanView {
    let outstanding: Amount = installments.iter().map(|i| i.state.unpaid_principal()).sum();
    let compensated: Amount = installments.iter().map(|i| i.state.compensated).sum();
    PlanView {
        accelerated: match (p.accelerated_as_of, p.accelerated_reason) {
            (Some(as_of), Some(reason)) => Some(Accelerated { as_of, reason }),
            _ => None,
        },
        id: p.id,
        order_id: p.order_id,
        bank_id: p.bank_id,
        loan_no: p.loan_no,
        principal: p.principal,
        pricing: p.pricing,
        rate: rate_string(p.rate),
        apr_irr: p.apr_irr,
        term_months: p.term_months,
        funded_on: p.funded_on,
        status: p.status,
        outstanding_principal: outstanding,
        compensated,
        installments: installments.iter().map(installment_view).collect(),
    }
}
