//! A provider's daily settlement (API.md §15), pure: the totals of a day's hold and line
//! movements by kind, what the provider owes each bank, and the two roll-forward identities the
//! file proves:
//!
//! - `closing.held  = opening.held  + placed − released − converted − voided`
//! - `closing.drawn = opening.drawn + converted − debt repayments`
//!
//! `hold_confirmed` carries the hold's amount but moves nothing and counts in neither.

use super::money::Amount;
use std::collections::BTreeMap;

/// The six kinds, in the order of the totals and the total rows.
pub const KINDS: [&str; 6] = ["hold_placed", "hold_confirmed", "hold_released", "hold_converted", "hold_voided", "debt_repayment"];

/// A provider's held and drawn at a day's start or end, in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub held_fen: i64,
    pub drawn_fen: i64,
}

/// One movement as the totals see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved<'a> {
    pub kind: &'a str,
    pub bank_id: Option<&'a str>,
    pub amount_fen: i64,
    pub split_fen: [i64; 4],
}

/// One kind's sums: `count`, then `amount, principal, interest, fee, penalty` in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindTotal {
    pub count: i64,
    pub amount_fen: i64,
    pub split_fen: [i64; 4],
}

/// A day's sums by kind (in [`KINDS`] order) and payables per bank (bank id order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub by_kind: [KindTotal; 6],
    /// `bank_id → (amount, count)` of the day's conversions.
    pub payables: BTreeMap<String, (i64, i64)>,
}

impl DayTotals {
    pub fn of(kind: &str, totals: &DayTotals) -> KindTotal {
        KINDS.iter().position(|k| *k == kind).map(|i| totals.by_kind[i]).unwrap_or_default()
    }
}

/// Sums a day's movements.
///
/// # Panics
/// On a kind not in [`KINDS`]: the renderer only ever produces those.
pub fn day_totals<'a>(movements: impl IntoIterator<Item = Moved<'a>>) -> DayTotals {
    let mut t = DayTotals::default();
    for m in movements {
        let i = KINDS.iter().position(|k| *k == m.kind).unwrap_or_else(|| panic!("{} is not a settlement kind", m.kind));
        let k = &mut t.by_kind[i];
        k.count += 1;
        k.amount_fen += m.amount_fen;
        for (s, add) in k.split_fen.iter_mut().zip(m.split_fen) {
            *s += add;
        }
        if m.kind == "hold_converted" {
            let p = t.payables.entry(m.bank_id.unwrap_or_default().to_string()).or_default();
            p.0 += m.amount_fen;
            p.1 += 1;
        }
    }
    let payable: i64 = t.payables.values().map(|(a, _)| a).sum();
    assert_eq!(payable, DayTotals::of("hold_converted", &t).amount_fen, "payables add up to the conversions");
    t
}

/// The closing balances the identities give from `opening` and the day's totals.
pub fn rolled_forward(opening: Balances, t: &DayTotals) -> Balances {
    let k = |kind| DayTotals::of(kind, t).amount_fen;
    Balances {
        held_fen: opening.held_fen + k("hold_placed") - k("hold_released") - k("hold_converted") - k("hold_voided"),
        drawn_fen: opening.drawn_fen + k("hold_converted") - k("debt_repayment"),
    }
}

/// Which identity a file breaks, if any: `held`, `drawn`, or both.
pub fn broken_identities(opening: Balances, closing: Balances, t: &DayTotals) -> Vec<&'static str> {
    let rolled = rolled_forward(opening, t);
    let mut broken = Vec::new();
    if rolled.held_fen != closing.held_fen {
        broken.push("held");
    }
    if rolled.drawn_fen != closing.drawn_fen {
        broken.push("drawn");
    }
    broken
}

/// Fen as an [`Amount`] (balances and totals are never negative in a sound ledger; a negative one
/// is shown as zero only by a broken one, which verification reports).
pub fn amount(fen: i64) -> Amount {
    Amount::from_fen(fen.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn moved(kind: &'static str, bank: Option<&'static str>, amount_fen: i64) -> Moved<'static> {
        Moved { kind, bank_id: bank, amount_fen, split_fen: [amount_fen, 0, 0, 0] }
    }

    #[test]
    fn a_day_rolls_forward_and_confirmation_moves_nothing() {
        let t = day_totals([
            moved("hold_placed", Some("bk"), 330046),
            moved("hold_confirmed", Some("bk"), 330046),
            moved("hold_converted", Some("bk"), 27539),
            moved("hold_released", Some("bk"), 1000),
            moved("debt_repayment", None, 500),
            moved("hold_converted", Some("bk2"), 100),
        ]);
        let opening = Balances { held_fen: 10, drawn_fen: 20 };
        let closing = rolled_forward(opening, &t);
        assert_eq!(closing, Balances { held_fen: 10 + 330046 - 27539 - 1000 - 100, drawn_fen: 20 + 27539 + 100 - 500 });
        assert_eq!(t.payables["bk"], (27539, 1));
        assert_eq!(t.payables["bk2"], (100, 1));
        assert!(broken_identities(opening, closing, &t).is_empty());
        assert_eq!(broken_identities(opening, Balances { held_fen: 0, ..closing }, &t), ["held"]);
    }

    proptest! {
        /// For any day, closing − opening is what the kinds moved, and payables sum to the conversions.
        #[test]
        fn the_identities_hold_for_any_day(
            day in proptest::collection::vec((0usize..6, 0usize..3, 1i64..1_000_000), 0..60),
            held in 0i64..10_000_000, drawn in 0i64..10_000_000,
        ) {
            let banks = ["bk-a", "bk-b", "bk-c"];
            let movements: Vec<Moved> = day.iter().map(|(k, b, a)| moved(KINDS[*k], Some(banks[*b]), *a)).collect();
            let t = day_totals(movements.clone());
            let opening = Balances { held_fen: held, drawn_fen: drawn };
            let mut closing = opening;
            for m in &movements {
                match m.kind {
                    "hold_placed" => closing.held_fen += m.amount_fen,
                    "hold_released" | "hold_voided" => closing.held_fen -= m.amount_fen,
                    "hold_converted" => { closing.held_fen -= m.amount_fen; closing.drawn_fen += m.amount_fen; }
                    "debt_repayment" => closing.drawn_fen -= m.amount_fen,
                    _ => {}
                }
            }
            prop_assert!(broken_identities(opening, closing, &t).is_empty());
            let count: i64 = t.by_kind.iter().map(|k| k.count).sum();
            prop_assert_eq!(count as usize, movements.len());
            let payable: i64 = t.payables.values().map(|(a, _)| a).sum();
            prop_assert_eq!(payable, DayTotals::of("hold_converted", &t).amount_fen);
        }
    }
}
