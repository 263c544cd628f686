//! The time Chorus stores: to the microsecond, the precision Postgres keeps
//! and the event wire format carries, so that a row or an event written
//! from memory equals what is read back, on either backend.

use time::OffsetDateTime;

/// Now, cut to the microsecond.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.microsecond() * 1_000).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_has_no_nanoseconds_below_the_microsecond() {
        assert_eq!(super::now_micros().nanosecond() % 1_000, 0);
    }
}
