//! The one source of time of the service (TigerBeetle's "run at your own pace"): production reads
//! the system clock; tests hold a [`ManualClock`] and step it, instead of rewriting rows whose
//! dates the service derived from the wall clock.

use crate::domain::shanghai_date;
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::{Arc, Mutex};

/// Now, and the business date it falls on (API.md §1: today is the Asia/Shanghai date).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    fn today(&self) -> NaiveDate {
        shanghai_date(self.now())
    }
}

/// The clock every service and job holds.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: Mutex::new(now) })
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The system clock shifted by an offset that can be changed: it advances in real time from
/// wherever it was set (tests that need a past or future "now" without stopping time).
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset: Mutex<chrono::Duration>,
}

impl ShiftedClock {
    pub fn new() -> Arc<ShiftedClock> {
        Arc::new(ShiftedClock::default())
    }

    /// From now on, `now` reads `at` plus the time passed since this call.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) = at - Utc::now();
    }

    /// Back to the system clock.
    pub fn reset(&self) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) = chrono::Duration::zero();
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_dates_in_shanghai() {
        let start = DateTime::parse_from_rfc3339("2027-01-31T15:59:59Z").unwrap().with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2027, 1, 31).unwrap());
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(clock.today(), NaiveDate::from_ymd_opt(2027, 2, 1).unwrap(), "16:00 UTC is midnight in Shanghai");
        let shared: SharedClock = clock.clone();
        clock.set(start);
        assert_eq!(shared.now(), start, "one clock, seen by every holder");
    }

    #[test]
    fn a_shifted_clock_advances_from_where_it_was_set() {
        let clock = ShiftedClock::new();
        let past = Utc::now() - chrono::Duration::days(400);
        clock.set(past);
        let read = clock.now();
        assert!(read >= past && read - past < chrono::Duration::seconds(5), "{read} after {past}");
        clock.reset();
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
