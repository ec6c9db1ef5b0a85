//! The ledger check of the closed dates' stored reports (API.md §15): each stored file is the
//! bytes its hash names; each provider's settlement proves both roll-forward identities; and for
//! each bank and date, what every provider owes it in `payables` is the `compensation` total of
//! its reconciliation.

use super::verify::Collector;
use chrono::NaiveDate;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

type Stored = (String, NaiveDate, String, String, Vec<u8>, String);

/// Fen of a money string of a stored file (`"12.34"`); a missing or malformed one reads as `None`.
fn fen(v: &Value) -> Option<i64> {
    v.as_str().and_then(|s| s.parse::<crate::domain::money::Amount>().ok()).map(|a| a.fen())
}

pub(super) fn check(c: &mut Collector, stored: &[Stored]) {
    // (date, bank) → (what the providers owe it, its reconciliation's compensation total)
    let mut payables: BTreeMap<(NaiveDate, String), (i64, Option<i64>)> = BTreeMap::new();
    for (kind, date, subject, format, body, sha256) in stored {
        let id = format!("{kind}:{date}:{}:{format}", if subject.is_empty() { "all" } else { subject });
        let actual = hex::encode(Sha256::digest(body));
        c.check(&actual == sha256, "stored_report_hash", &id, || format!("the stored bytes hash to {actual}, not {sha256}"));
        if format != "json" {
            continue;
        }
        let Ok(file) = serde_json::from_slice::<Value>(body) else {
            c.check(false, "stored_report_readable", &id, || "the stored JSON does not parse".to_string());
            continue;
        };
        match kind.as_str() {
            "settlement" => check_settlement(c, &id, &file, *date, &mut payables),
            _ if !subject.is_empty() => {
                payables.entry((*date, subject.clone())).or_default().1 = fen(&file["totals"]["compensation"]["amount"]);
            }
            _ => {}
        }
    }
    for ((date, bank), (owed, compensated)) in payables {
        let Some(compensated) = compensated else { continue };
        c.check(owed == compensated, "settlement_payables_match_compensations", &format!("{date}:{bank}"), || {
            format!("the providers owe {owed} fen for the conversions but the reconciliation's compensation total is {compensated}")
        });
    }
}

/// Both identities of one stored settlement; its payables added up per bank.
fn check_settlement(
    c: &mut Collector,
    id: &str,
    file: &Value,
    date: NaiveDate,
    payables: &mut BTreeMap<(NaiveDate, String), (i64, Option<i64>)>,
) {
    let t = |kind: &str| fen(&file["totals"][kind]["amount"]).unwrap_or(0);
    let at = |side: &str, what: &str| fen(&file[side][what]).unwrap_or(0);
    let held = at("opening", "held") + t("hold_placed") - t("hold_released") - t("hold_converted") - t("hold_voided");
    let closing_held = at("closing", "held");
    c.check(held == closing_held, "settlement_held_rolls_forward", id, || {
        format!("opening held + placed − released − converted − voided = {held} fen, but closing held is {closing_held}")
    });
    let drawn = at("opening", "drawn") + t("hold_converted") - t("debt_repayment");
    let closing_drawn = at("closing", "drawn");
    c.check(drawn == closing_drawn, "settlement_drawn_rolls_forward", id, || {
        format!("opening drawn + converted − debt repayments = {drawn} fen, but closing drawn is {closing_drawn}")
    });
    for p in file["payables"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let bank = p["bank_id"].as_str().unwrap_or_default().to_string();
        payables.entry((date, bank)).or_default().0 += fen(&p["amount"]).unwrap_or(0);
    }
}
