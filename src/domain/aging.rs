//! The aging of a book (API.md §16): each `active` or `defaulted` plan falls in one bucket by the
//! days past due of its oldest unpaid installment as of a date. Pure: the database counts plans
//! per bucket with [`THRESHOLDS`] (`width_bucket`), so that the bounds are stated once, here, and
//! [`Bucket::of`] is what a day count means; [`summarize`] turns stored or counted rows into the
//! answer's six buckets.

use super::money::Amount;
use serde::{Deserialize, Serialize};

/// The buckets, in the order the answer lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// Not past due: nothing unpaid is due before the date.
    Current,
    D1To30,
    D31To60,
    D61To90,
    D91To180,
    D181Plus,
}

/// The first day count of each bucket after `current`: `width_bucket(days, THRESHOLDS)` is the
/// bucket's index in [`Bucket::ALL`] (0 for fewer days than the first threshold).
pub const THRESHOLDS: [i32; 5] = [1, 31, 61, 91, 181];

impl Bucket {
    pub const ALL: [Bucket; 6] = [Bucket::Current, Bucket::D1To30, Bucket::D31To60, Bucket::D61To90, Bucket::D91To180, Bucket::D181Plus];

    pub const fn as_str(self) -> &'static str {
        match self {
            Bucket::Current => "current",
            Bucket::D1To30 => "1-30",
            Bucket::D31To60 => "31-60",
            Bucket::D61To90 => "61-90",
            Bucket::D91To180 => "91-180",
            Bucket::D181Plus => "181+",
        }
    }

    /// The bucket of a plan whose oldest unpaid installment is `days` past due (0 or less: current).
    pub fn of(days: i64) -> Bucket {
        let index = THRESHOLDS.iter().take_while(|t| days >= i64::from(**t)).count();
        Bucket::ALL[index]
    }

    /// The bucket of an index as `width_bucket` over [`THRESHOLDS`] gives it.
    pub fn from_index(index: i32) -> Option<Bucket> {
        usize::try_from(index).ok().and_then(|i| Bucket::ALL.get(i).copied())
    }

    pub fn index(self) -> i32 {
        Bucket::ALL.iter().position(|b| *b == self).expect("every bucket is in ALL") as i32
    }
}

/// One bank's plans in one bucket: what the database counts, and what a snapshot keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgingRow {
    pub bank_id: String,
    /// The bucket's index in [`Bucket::ALL`].
    pub bucket: i32,
    pub plans: i64,
    pub outstanding_principal_fen: i64,
    pub unpaid_due_fen: i64,
}

/// One bucket of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BucketView {
    /// `current`, `1-30`, `31-60`, `61-90`, `91-180` or `181+`.
    pub bucket: &'static str,
    pub plans: i64,
    pub outstanding_principal: Amount,
    /// Everything unpaid, penalty included, of installments due before the date.
    pub unpaid_due: Amount,
}

/// The six buckets in order, each the sum of the rows of `bank` (every bank's when `None`); a
/// bucket without rows reads zero.
pub fn summarize(rows: &[AgingRow], bank: Option<&str>) -> Vec<BucketView> {
    let mut sums = [(0i64, 0i64, 0i64); 6];
    for row in rows.iter().filter(|r| bank.is_none_or(|b| r.bank_id == b)) {
        // A row of a bucket this version does not know (none is written) cannot be placed.
        let Some(bucket) = Bucket::from_index(row.bucket) else { continue };
        let sum = &mut sums[bucket.index() as usize];
        sum.0 += row.plans;
        sum.1 += row.outstanding_principal_fen;
        sum.2 += row.unpaid_due_fen;
    }
    Bucket::ALL
        .iter()
        .zip(sums)
        .map(|(b, (plans, principal, due))| BucketView {
            bucket: b.as_str(),
            plans,
            outstanding_principal: Amount::from_fen(principal),
            unpaid_due: Amount::from_fen(due),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_bounds_are_api_mds() {
        let cases = [(-3, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"), (61, "61-90")];
        for (days, name) in cases {
            assert_eq!(Bucket::of(days).as_str(), name, "{days}");
        }
        for (days, name) in [(90, "61-90"), (91, "91-180"), (180, "91-180"), (181, "181+"), (10_000, "181+")] {
            assert_eq!(Bucket::of(days).as_str(), name, "{days}");
        }
    }

    #[test]
    fn an_empty_book_answers_six_zero_buckets() {
        let buckets = summarize(&[], None);
        assert_eq!(buckets.iter().map(|b| b.bucket).collect::<Vec<_>>(), ["current", "1-30", "31-60", "61-90", "91-180", "181+"]);
        assert!(buckets.iter().all(|b| b.plans == 0 && b.outstanding_principal.is_zero() && b.unpaid_due.is_zero()));
    }

    fn rows() -> impl Strategy<Value = Vec<AgingRow>> {
        let row = (0..3u8, 0..6i32, 0..1000i64, 0..10_000_000i64, 0..10_000_000i64).prop_map(|(b, bucket, plans, p, d)| AgingRow {
            bank_id: format!("bk{b}"),
            bucket,
            plans,
            outstanding_principal_fen: p,
            unpaid_due_fen: d,
        });
        proptest::collection::vec(row, 0..40)
    }

    proptest! {
        /// Every day count is in exactly one bucket, buckets follow the days in order, and the
        /// index round-trips: what `width_bucket` counts in SQL is what `of` says.
        #[test]
        fn each_day_count_has_one_bucket_in_order(a in -400i64..4000, b in -400i64..4000) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(Bucket::of(lo) <= Bucket::of(hi));
            let width_bucket = THRESHOLDS.iter().filter(|t| lo >= i64::from(**t)).count() as i32;
            prop_assert_eq!(Bucket::from_index(width_bucket), Some(Bucket::of(lo)));
            prop_assert_eq!(Bucket::of(lo).index(), width_bucket);
        }

        /// Summing conserves plans and money: the buckets of all banks are the sums of each bank's.
        #[test]
        fn summaries_conserve_the_rows(rows in rows()) {
            let all = summarize(&rows, None);
            prop_assert_eq!(all.iter().map(|b| b.plans).sum::<i64>(), rows.iter().map(|r| r.plans).sum::<i64>());
            prop_assert_eq!(
                all.iter().map(|b| b.unpaid_due.fen()).sum::<i64>(),
                rows.iter().map(|r| r.unpaid_due_fen).sum::<i64>()
            );
            let per_bank: Vec<Vec<BucketView>> = ["bk0", "bk1", "bk2"].iter().map(|b| summarize(&rows, Some(b))).collect();
            for (i, bucket) in all.iter().enumerate() {
                prop_assert_eq!(bucket.plans, per_bank.iter().map(|v| v[i].plans).sum::<i64>());
                prop_assert_eq!(
                    bucket.outstanding_principal.fen(),
                    per_bank.iter().map(|v| v[i].outstanding_principal.fen()).sum::<i64>()
                );
            }
        }
    }
}
