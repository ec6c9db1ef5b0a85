//! Statuses as the database keeps them: text columns whose CHECK constraints list the same texts
//! (sql/V2__origination.sql), bound and read through each status's one spelling
//! (`domain::status`). Text rather than PostgreSQL enum types, so that the v2 states (API.md
//! §12-§14) are a constraint's list to extend, not a type to alter under running statements; a
//! text no status has is refused by the constraint on the way in and by `FromSql` on the way out.

use crate::domain::status::{DeclineReason, HoldConfirmation, ReturnStatus};
use crate::domain::status::{HoldStatus, InstallmentStatus, LineStatus, NoticeState, OrderStatus, PlanStatus, VoidReason};
use bytes::BytesMut;
use std::error::Error;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

macro_rules! text_column {
    ($($status:ty),+) => {$(
        impl ToSql for $status {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $status {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<$status, Box<dyn Error + Sync + Send>> {
                Ok(<&str as FromSql>::from_sql(ty, raw)?.parse::<$status>()?)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    )+};
}

text_column!(
    OrderStatus,
    PlanStatus,
    HoldStatus,
    LineStatus,
    InstallmentStatus,
    NoticeState,
    VoidReason,
    HoldConfirmation,
    DeclineReason,
    ReturnStatus
);
