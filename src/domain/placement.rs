//! Where an order may go (API.md §4): the region, the partner's eligibility, the matching credit
//! line and the banks that may fund it, decided from data the service already loaded.
//!
//! The bank's reservation is not decided here: whether a bank has room is only known by
//! reserving it in the database, racing other orders. The decision names the banks worth trying,
//! in routing order; the service reserves on the first with room.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::dates::add_months_clamped;
use super::identity::{RegionCode, RegionPattern};
use super::money::Amount;
use super::partner::{IneligibleReason, eligibility};

/// Who sells: a store sells in its own region for every provider of the product; a partner
/// only where it is open, when eligible, and for the providers that authorised it.
#[derive(Debug, Clone)]
pub enum Seller<'a> {
    Store,
    Partner(PartnerFacts<'a>),
}

/// What a partner's eligibility and reach are decided from.
#[derive(Debug, Clone)]
pub struct PartnerFacts<'a> {
    pub regions: &'a [String],
    pub authorized_providers: &'a [String],
    pub deposit_paid: Amount,
    pub established_on: NaiveDate,
    pub major_violation_last_year: bool,
    /// The configured minimum deposit.
    pub min_deposit: Amount,
    /// The date eligibility is judged on.
    pub today: NaiveDate,
}

/// The order as priced, with the product terms the decision reads.
#[derive(Debug, Clone)]
pub struct PricedOrder<'a> {
    pub region: &'a RegionCode,
    /// The product's regions (patterns of API.md §1).
    pub product_regions: &'a [String],
    /// The product's providers, in its preference order.
    pub product_providers: &'a [String],
    pub term_months: u32,
    pub apr: Decimal,
    pub hold_amount: Amount,
    /// The funding deadline's Asia/Shanghai date.
    pub funding_deadline_on: NaiveDate,
}

/// One of the customer's credit lines.
#[derive(Debug, Clone)]
pub struct LineFacts<'a> {
    pub provider_id: &'a str,
    pub status: &'a str,
    pub phone_hash: &'a str,
    pub expires_on: NaiveDate,
    pub available: Amount,
}

/// One bank, as routing lists it.
#[derive(Debug, Clone)]
pub struct BankFacts<'a> {
    pub apr_min: Decimal,
    pub apr_max: Decimal,
    /// `None`: everywhere.
    pub regions: Option<&'a [String]>,
}

/// Everything one placement is decided from.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub seller: Seller<'a>,
    pub order: PricedOrder<'a>,
    /// The keyed hash of the order's phone.
    pub phone_hash: &'a str,
    /// The customer's lines (the customer is the ID number).
    pub lines: &'a [LineFacts<'a>],
    /// Every bank, in routing order.
    pub banks: &'a [BankFacts<'a>],
}

/// Where the order goes: indexes into [`Placement::lines`] and [`Placement::banks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The matching line: the hold is placed on it.
    pub line: usize,
    /// The banks whose APR range and regions fit the order, in routing order (never empty):
    /// the first with room for the principal funds it.
    pub banks: Vec<usize>,
}

/// Why the order is refused, in the order API.md §4 checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The product's regions, or a partner's, do not cover the order's.
    RegionNotOpen,
    /// Every reason that applies, in a fixed order; `NotAuthorizedForProduct` last.
    PartnerNotEligible(Vec<IneligibleReason>),
    /// One answer whatever failed: telling a missing line from a wrong phone or a short line
    /// would let anyone holding an ID number probe a stranger's credit.
    NoMatchingCreditLine { hold_amount: Amount, valid_until_at_least: NaiveDate },
    /// No bank's APR range and regions fit the order.
    NoFundingBank,
}

/// The region, the partner, the line, the candidate banks: the first check that fails refuses.
pub fn decide(p: &Placement<'_>) -> Result<Decision, Refusal> {
    let o = &p.order;
    let region_open = covers_any(o.product_regions, o.region)
        && match &p.seller {
            Seller::Store => true,
            Seller::Partner(partner) => covers_any(partner.regions, o.region),
        };
    if !region_open {
        return Err(Refusal::RegionNotOpen);
    }
    let providers = providers(&p.seller, o.product_providers)?;
    let must_run_until = add_months_clamped(o.funding_deadline_on, o.term_months);
    let line = matching_line(p.lines, &providers, p.phone_hash, must_run_until, o.hold_amount)
        .ok_or(Refusal::NoMatchingCreditLine { hold_amount: o.hold_amount, valid_until_at_least: must_run_until })?;
    let banks = candidate_banks(p.banks, o.apr, o.region);
    if banks.is_empty() {
        return Err(Refusal::NoFundingBank);
    }
    Ok(Decision { line, banks })
}

/// True when one of `patterns` (malformed ones ignored) covers `code` (API.md §1).
pub fn covers_any(patterns: &[String], code: &RegionCode) -> bool {
    patterns.iter().any(|p| RegionPattern::parse(p).is_ok_and(|p| p.covers(code)))
}

/// The providers whose lines may take the order, in the product's order; a partner's refusal.
fn providers<'a>(seller: &Seller<'_>, product_providers: &'a [String]) -> Result<Vec<&'a str>, Refusal> {
    let Seller::Partner(partner) = seller else {
        return Ok(product_providers.iter().map(String::as_str).collect());
    };
    let authorised: Vec<&str> = product_providers.iter().filter(|p| partner.authorized_providers.contains(p)).map(String::as_str).collect();
    let mut reasons = eligibility(
        partner.deposit_paid,
        partner.established_on,
        partner.authorized_providers.len(),
        partner.major_violation_last_year,
        partner.today,
        partner.min_deposit,
    );
    if authorised.is_empty() {
        reasons.push(IneligibleReason::NotAuthorizedForProduct);
    }
    if reasons.is_empty() { Ok(authorised) } else { Err(Refusal::PartnerNotEligible(reasons)) }
}

/// The first of `providers` where the customer's line with it is active, registered with the
/// order's phone, valid until `must_run_until`, with `hold_amount` available.
fn matching_line(
    lines: &[LineFacts<'_>],
    providers: &[&str],
    phone_hash: &str,
    must_run_until: NaiveDate,
    hold_amount: Amount,
) -> Option<usize> {
    providers.iter().filter_map(|p| lines.iter().position(|l| l.provider_id == *p)).find(|&i| {
        let l = &lines[i];
        l.status == "active" && l.phone_hash == phone_hash && l.expires_on >= must_run_until && l.available >= hold_amount
    })
}

/// The banks whose APR range holds `apr` and whose regions cover `region`, in routing order.
fn candidate_banks(banks: &[BankFacts<'_>], apr: Decimal, region: &RegionCode) -> Vec<usize> {
    let fits = |b: &BankFacts<'_>| apr >= b.apr_min && apr <= b.apr_max && b.regions.is_none_or(|rs| covers_any(rs, region));
    banks.iter().enumerate().filter(|(_, b)| fits(b)).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const TODAY: (i32, u32, u32) = (2027, 1, 30);
    fn min_deposit() -> Amount {
        amount("3000000.00")
    }

    #[derive(Debug, Clone)]
    struct Line {
        provider_id: String,
        status: String,
        phone_hash: String,
        expires_on: NaiveDate,
        available: Amount,
    }

    #[derive(Debug, Clone)]
    struct Bank {
        apr_min: Decimal,
        apr_max: Decimal,
        regions: Option<Vec<String>>,
    }

    #[derive(Debug, Clone)]
    struct Partner {
        regions: Vec<String>,
        authorized_providers: Vec<String>,
        deposit_paid: Amount,
        established_on: NaiveDate,
        major_violation_last_year: bool,
    }

    /// One placement's inputs, owned: [`World::decide`] lends them to [`decide`].
    #[derive(Debug, Clone)]
    struct World {
        region: RegionCode,
        product_regions: Vec<String>,
        product_providers: Vec<String>,
        partner: Option<Partner>,
        term_months: u32,
        apr: Decimal,
        hold_amount: Amount,
        deadline_on: NaiveDate,
        phone_hash: String,
        lines: Vec<Line>,
        banks: Vec<Bank>,
    }

    impl World {
        fn decide(&self) -> Result<Decision, Refusal> {
            let seller = match &self.partner {
                None => Seller::Store,
                Some(p) => Seller::Partner(PartnerFacts {
                    regions: &p.regions,
                    authorized_providers: &p.authorized_providers,
                    deposit_paid: p.deposit_paid,
                    established_on: p.established_on,
                    major_violation_last_year: p.major_violation_last_year,
                    min_deposit: min_deposit(),
                    today: d(TODAY.0, TODAY.1, TODAY.2),
                }),
            };
            let lines: Vec<LineFacts<'_>> = self
                .lines
                .iter()
                .map(|l| LineFacts {
                    provider_id: &l.provider_id,
                    status: &l.status,
                    phone_hash: &l.phone_hash,
                    expires_on: l.expires_on,
                    available: l.available,
                })
                .collect();
            let banks: Vec<BankFacts<'_>> =
                self.banks.iter().map(|b| BankFacts { apr_min: b.apr_min, apr_max: b.apr_max, regions: b.regions.as_deref() }).collect();
            let order = PricedOrder {
                region: &self.region,
                product_regions: &self.product_regions,
                product_providers: &self.product_providers,
                term_months: self.term_months,
                apr: self.apr,
                hold_amount: self.hold_amount,
                funding_deadline_on: self.deadline_on,
            };
            decide(&Placement { seller, order, phone_hash: &self.phone_hash, lines: &lines, banks: &banks })
        }

        fn must_run_until(&self) -> NaiveDate {
            add_months_clamped(self.deadline_on, self.term_months)
        }

        fn no_line(&self) -> Refusal {
            Refusal::NoMatchingCreditLine { hold_amount: self.hold_amount, valid_until_at_least: self.must_run_until() }
        }
    }

    fn line(provider_id: &str) -> Line {
        Line {
            provider_id: provider_id.to_string(),
            status: "active".to_string(),
            phone_hash: "h".to_string(),
            expires_on: d(2028, 6, 30),
            available: amount("5000"),
        }
    }

    /// A store's order in 440305 that one line and one bank take.
    fn store_world() -> World {
        World {
            region: RegionCode::parse_order("440305").unwrap(),
            product_regions: strings(&["44"]),
            product_providers: strings(&["p1", "p2"]),
            partner: None,
            term_months: 12,
            apr: dec!(0.1956),
            hold_amount: amount("1000"),
            deadline_on: d(2027, 1, 31),
            phone_hash: "h".to_string(),
            lines: vec![line("p1")],
            banks: vec![Bank { apr_min: dec!(0.10), apr_max: dec!(0.30), regions: None }],
        }
    }

    /// The same order from an eligible partner open in 4403 and authorised by both providers.
    fn partner_world() -> World {
        let partner = Partner {
            regions: strings(&["440300"]),
            authorized_providers: strings(&["p2", "p1"]),
            deposit_paid: min_deposit(),
            established_on: d(2025, 1, 1),
            major_violation_last_year: false,
        };
        World { partner: Some(partner), ..store_world() }
    }

    #[test]
    fn a_store_takes_the_first_provider_with_a_matching_line() {
        let mut w = store_world();
        assert_eq!(w.decide(), Ok(Decision { line: 0, banks: vec![0] }));
        w.lines = vec![line("p2"), line("p9"), line("p1")];
        assert_eq!(w.decide().unwrap().line, 2, "p1 comes first in the product's order, wherever its line is listed");
        w.lines[2].status = "frozen".to_string();
        assert_eq!(w.decide().unwrap().line, 0, "p1's line fails: p2's is next");
        w.lines[0].phone_hash = "other".to_string();
        assert_eq!(w.decide(), Err(w.no_line()));
    }

    #[test]
    fn a_line_valid_exactly_until_the_end_with_exactly_the_hold_matches() {
        let mut w = store_world();
        assert_eq!(w.must_run_until(), d(2028, 1, 31));
        w.lines[0].expires_on = d(2028, 1, 31);
        w.lines[0].available = w.hold_amount;
        assert!(w.decide().is_ok());
        w.lines[0].available = amount("999.99");
        assert_eq!(w.decide(), Err(w.no_line()));
        w.lines[0].available = w.hold_amount;
        w.lines[0].expires_on = d(2028, 1, 30);
        assert_eq!(w.decide(), Err(w.no_line()));
    }

    #[test]
    fn the_plan_end_is_clamped_to_the_month() {
        let mut w = store_world();
        w.term_months = 1;
        w.lines.clear();
        assert_eq!(w.decide(), Err(Refusal::NoMatchingCreditLine { hold_amount: amount("1000"), valid_until_at_least: d(2027, 2, 28) }));
    }

    #[test]
    fn a_partner_uses_only_the_providers_that_authorised_it() {
        let mut w = partner_world();
        assert_eq!(w.decide().unwrap().line, 0);
        w.partner.as_mut().unwrap().authorized_providers = strings(&["p2", "p9"]);
        assert_eq!(w.decide(), Err(w.no_line()), "p1's line is not the partner's to use");
        w.lines.push(line("p2"));
        assert_eq!(w.decide().unwrap().line, 1);
    }

    #[test]
    fn a_partner_not_authorised_for_the_product_says_so_last() {
        let mut w = partner_world();
        w.partner.as_mut().unwrap().authorized_providers = strings(&["p9"]);
        assert_eq!(w.decide(), Err(Refusal::PartnerNotEligible(vec![IneligibleReason::NotAuthorizedForProduct])));
        let p = w.partner.as_mut().unwrap();
        p.authorized_providers.clear();
        p.major_violation_last_year = true;
        assert_eq!(
            w.decide(),
            Err(Refusal::PartnerNotEligible(vec![
                IneligibleReason::NoProviderAuthorization,
                IneligibleReason::MajorViolation,
                IneligibleReason::NotAuthorizedForProduct,
            ]))
        );
    }

    #[test]
    fn the_region_is_checked_before_the_partner() {
        let mut w = partner_world();
        w.partner.as_mut().unwrap().major_violation_last_year = true;
        w.partner.as_mut().unwrap().regions = strings(&["4401"]);
        assert_eq!(w.decide(), Err(Refusal::RegionNotOpen), "the partner's regions must cover the order's");
        w.partner.as_mut().unwrap().regions = strings(&["44"]);
        w.product_regions = strings(&["11", "440306"]);
        assert_eq!(w.decide(), Err(Refusal::RegionNotOpen), "and the product's");
        w.product_regions = strings(&["440305"]);
        assert_eq!(w.decide(), Err(Refusal::PartnerNotEligible(vec![IneligibleReason::MajorViolation])));
    }

    #[test]
    fn banks_fit_by_apr_range_inclusive_and_regions() {
        let mut w = store_world();
        let bank = |min, max, regions: Option<&[&str]>| Bank { apr_min: min, apr_max: max, regions: regions.map(strings) };
        w.banks = vec![
            bank(dec!(0.1957), dec!(0.30), None),
            bank(dec!(0.10), dec!(0.1956), Some(&["4403"])),
            bank(dec!(0.1956), dec!(0.1956), Some(&["11", "4401"])),
            bank(dec!(0.1956), dec!(0.20), None),
        ];
        assert_eq!(w.decide(), Ok(Decision { line: 0, banks: vec![1, 3] }));
        w.banks.truncate(1);
        assert_eq!(w.decide(), Err(Refusal::NoFundingBank));
        w.lines.clear();
        assert_eq!(w.decide(), Err(w.no_line()), "the line is checked before the banks");
    }

    // ---------- properties ----------

    /// §1 said another way: the listed code, padded to 6 digits, is the order's code with its
    /// last k pairs zeroed for some k.
    fn covers_by_section_1(pattern: &str, code: &str) -> bool {
        let well_formed = matches!(pattern.len(), 2 | 4 | 6) && pattern.bytes().all(|b| b.is_ascii_digit());
        let padded = format!("{pattern:0<6}");
        well_formed && (0..=3).any(|k| padded == format!("{}{}", &code[..6 - 2 * k], "00".repeat(k)))
    }

    fn fits_by_section_4(b: &Bank, apr: Decimal, code: &str) -> bool {
        b.apr_min <= apr && apr <= b.apr_max && b.regions.as_ref().is_none_or(|rs| rs.iter().any(|p| covers_by_section_1(p, code)))
    }

    fn matches_by_section_4(w: &World, l: &Line) -> bool {
        l.status == "active" && l.phone_hash == w.phone_hash && l.expires_on >= w.must_run_until() && l.available >= w.hold_amount
    }

    /// The providers whose lines may take the order, as §4 words it.
    fn allowed_providers(w: &World) -> Vec<String> {
        let authorised = |p: &String| w.partner.as_ref().is_none_or(|partner| partner.authorized_providers.contains(p));
        w.product_providers.iter().filter(|p| authorised(p)).cloned().collect()
    }

    // Few pairs, so that listed codes often cover the order's (and "00" pairs often trail).
    const PAIRS: [&str; 3] = ["44", "03", "00"];

    fn arb_code() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(&PAIRS[..]), 3).prop_map(|pairs| pairs.concat())
    }

    fn arb_pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => proptest::collection::vec(proptest::sample::select(&PAIRS[..]), 1..=3).prop_map(|pairs| pairs.concat()),
            1 => proptest::sample::select(&["4", "440", "44030500", "4a", "11", ""][..]).prop_map(str::to_string),
        ]
    }

    /// Lists that cover `code` about half the time: its first pairs, `00`-padded, or any pattern.
    fn arb_patterns_near(code: String) -> impl Strategy<Value = Vec<String>> {
        let near = (1..=3_usize, 0..=2_usize)
            .prop_map(move |(kept, padded)| format!("{}{}", &code[..2 * kept], "00".repeat(padded.min(3 - kept))));
        proptest::collection::vec(prop_oneof![3 => near, 1 => arb_pattern()], 1..4)
    }

    const PROVIDERS: [&str; 4] = ["p0", "p1", "p2", "p3"];

    fn arb_providers(at_least: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(&PROVIDERS[..], at_least..=4).prop_shuffle().prop_map(|ps| strings(&ps))
    }

    prop_compose! {
        fn arb_line()(
            provider in proptest::sample::select(&PROVIDERS[..]),
            status in proptest::sample::select(&["active", "active", "active", "active", "active", "frozen", "closed"][..]),
            phone in proptest::sample::select(&["h", "h", "h", "h", "h", "g"][..]),
            expiry_days in -5_i64..40,
            available_fen in 0_i64..9000,
        ) -> Line {
            // Around the end of a 12-month plan funded by 2027-01-31.
            let expires_on = d(2028, 1, 31) + chrono::Duration::days(expiry_days);
            Line { provider_id: provider.to_string(), status: status.to_string(), phone_hash: phone.to_string(), expires_on,
                   available: Amount::from_fen(available_fen) }
        }
    }

    prop_compose! {
        fn arb_bank(code: String)(
            min in 0_i64..40,
            width in 0_i64..20,
            everywhere in any::<bool>(),
            regions in arb_patterns_near(code),
        ) -> Bank {
            let apr_min = Decimal::new(min, 2);
            Bank { apr_min, apr_max: apr_min + Decimal::new(width, 2), regions: (!everywhere).then_some(regions) }
        }
    }

    prop_compose! {
        fn arb_partner(code: String)(
            regions in arb_patterns_near(code),
            authorized_providers in arb_providers(0),
            deposit_fen in prop_oneof![1 => Just(0_i64), 1 => Just(299_999_999), 3 => Just(300_000_000), 3 => Just(500_000_000)],
            established_days in 350_i64..450,
            major_violation_last_year in proptest::bool::weighted(0.2),
        ) -> Partner {
            let established_on = d(TODAY.0, TODAY.1, TODAY.2) - chrono::Duration::days(established_days);
            Partner { regions, authorized_providers, deposit_paid: Amount::from_fen(deposit_fen), established_on,
                      major_violation_last_year }
        }
    }

    prop_compose! {
        fn arb_world()(code in arb_code())(
            code in Just(code.clone()),
            product_regions in arb_patterns_near(code.clone()),
            product_providers in arb_providers(1),
            partner in proptest::option::of(arb_partner(code.clone())),
            apr_points in 0_i64..60,
            hold_fen in 1_i64..3000,
            lines in proptest::collection::vec(arb_line(), 0..6),
            banks in proptest::collection::vec(arb_bank(code.clone()), 0..5),
        ) -> World {
            World {
                region: RegionCode::parse_order(&code).unwrap(),
                product_regions, product_providers, partner,
                term_months: 12,
                apr: Decimal::new(apr_points, 2),
                hold_amount: Amount::from_fen(hold_fen),
                deadline_on: d(2027, 1, 31),
                phone_hash: "h".to_string(),
                lines, banks,
            }
        }
    }

    /// §4 step by step, written out plainly: what [`decide`] must answer.
    fn expected(w: &World) -> Result<Decision, Refusal> {
        let code = w.region.as_str();
        let covers = |patterns: &[String]| patterns.iter().any(|p| covers_by_section_1(p, code));
        if !covers(&w.product_regions) || w.partner.as_ref().is_some_and(|p| !covers(&p.regions)) {
            return Err(Refusal::RegionNotOpen);
        }
        let allowed = allowed_providers(w);
        if let Some(p) = &w.partner {
            let mut reasons = eligibility(
                p.deposit_paid,
                p.established_on,
                p.authorized_providers.len(),
                p.major_violation_last_year,
                d(TODAY.0, TODAY.1, TODAY.2),
                min_deposit(),
            );
            if allowed.is_empty() {
                reasons.push(IneligibleReason::NotAuthorizedForProduct);
            }
            if !reasons.is_empty() {
                return Err(Refusal::PartnerNotEligible(reasons));
            }
        }
        // The customer's line with each allowed provider, in the product's order.
        let first_line_of = |p: &String| w.lines.iter().position(|l| &l.provider_id == p);
        let line = allowed.iter().filter_map(first_line_of).find(|&i| matches_by_section_4(w, &w.lines[i])).ok_or(w.no_line())?;
        let banks: Vec<usize> = (0..w.banks.len()).filter(|&i| fits_by_section_4(&w.banks[i], w.apr, code)).collect();
        if banks.is_empty() { Err(Refusal::NoFundingBank) } else { Ok(Decision { line, banks }) }
    }

    /// The properties below say little unless the worlds reach every answer: each does, often.
    #[test]
    fn generated_worlds_reach_every_outcome() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut counts = [0_u32; 5];
        for _ in 0..2000 {
            let w = proptest::strategy::ValueTree::current(&arb_world().new_tree(&mut runner).unwrap());
            let outcome = match w.decide() {
                Err(Refusal::RegionNotOpen) => 0,
                Err(Refusal::PartnerNotEligible(_)) => 1,
                Err(Refusal::NoMatchingCreditLine { .. }) => 2,
                Err(Refusal::NoFundingBank) => 3,
                Ok(_) => 4,
            };
            counts[outcome] += 1;
        }
        assert!(counts.iter().all(|&n| n >= 60), "region, partner, line, bank, placed: {counts:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any world: the decision is §4's, refusals in its order.
        #[test]
        fn decides_as_section_4_reads(w in arb_world()) {
            prop_assert_eq!(w.decide(), expected(&w));
        }

        /// The chosen line matches every rule, belongs to an allowed provider, and every allowed
        /// provider before it in the product's order has no matching line.
        #[test]
        fn the_line_is_the_first_allowed_provider_that_matches(w in arb_world()) {
            let Ok(decision) = w.decide() else { return Ok(()) };
            let chosen = &w.lines[decision.line];
            prop_assert!(matches_by_section_4(&w, chosen));
            let allowed = allowed_providers(&w);
            let rank = allowed.iter().position(|p| p == &chosen.provider_id);
            prop_assert!(rank.is_some(), "the line's provider may take the order");
            for earlier in &allowed[..rank.unwrap()] {
                let first = w.lines.iter().find(|l| &l.provider_id == earlier);
                prop_assert!(first.is_none_or(|l| !matches_by_section_4(&w, l)));
            }
            prop_assert_eq!(Some(decision.line), w.lines.iter().position(|l| l.provider_id == chosen.provider_id));
        }

        /// Whichever rules the customer's only line breaks, the answer is the same.
        #[test]
        fn a_refused_line_gets_one_answer(broken in 1_u8..32, hold_fen in 1_i64..3000) {
            let mut w = store_world();
            w.hold_amount = Amount::from_fen(hold_fen);
            let l = &mut w.lines[0];
            l.available = Amount::from_fen(hold_fen);
            l.expires_on = d(2028, 1, 31);
            let rules: [fn(&mut Line); 5] = [
                |l| l.provider_id = "p9".to_string(),
                |l| l.status = "closed".to_string(),
                |l| l.phone_hash = "g".to_string(),
                |l| l.expires_on = d(2028, 1, 30),
                |l| l.available = l.available.checked_sub(Amount::from_fen(1)).unwrap(),
            ];
            for (i, b) in rules.iter().enumerate() {
                if broken & (1 << i) != 0 {
                    b(&mut w.lines[0]);
                }
            }
            let one_answer = Refusal::NoMatchingCreditLine { hold_amount: Amount::from_fen(hold_fen), valid_until_at_least: d(2028, 1, 31) };
            prop_assert_eq!(w.decide(), Err(one_answer));
        }

        /// A listed code covers an order's exactly as §1 says.
        #[test]
        fn region_coverage_is_section_1s(pattern in arb_pattern(), code in arb_code()) {
            let region = RegionCode::parse_order(&code).unwrap();
            prop_assert_eq!(covers_any(std::slice::from_ref(&pattern), &region), covers_by_section_1(&pattern, &code));
        }

        /// The candidate banks are every bank that fits the APR and region, in routing order.
        #[test]
        fn candidate_banks_keep_routing_order_and_fit(w in arb_world()) {
            match w.decide() {
                Ok(decision) => {
                    prop_assert!(decision.banks.windows(2).all(|pair| pair[0] < pair[1]));
                    for (i, b) in w.banks.iter().enumerate() {
                        prop_assert_eq!(decision.banks.contains(&i), fits_by_section_4(b, w.apr, w.region.as_str()));
                    }
                }
                Err(Refusal::NoFundingBank) => {
                    prop_assert!(w.banks.iter().all(|b| !fits_by_section_4(b, w.apr, w.region.as_str())));
                }
                Err(_) => {}
            }
        }
    }
}
