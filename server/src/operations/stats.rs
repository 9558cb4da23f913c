//! Figures over the whole store for the dashboard's charts: memories stored per day.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use mnemo_api::rest::{DailyCount, DailyQuery, DailyStats};

use super::OpError;
use crate::service::MemoryService;
use crate::timeexpr;

/// The most days one request may ask for: a year and a day, so a leap year fits.
pub const MAX_DAYS: u32 = 366;

/// The days a request asks for when it names none.
pub const DEFAULT_DAYS: u32 = 90;

/// Memories stored on each of the last `days` days (today included) in `tz`, oldest
/// first, every day present. The day boundaries use `tz`'s offset now: across a
/// daylight-saving change, older days are cut an hour off their wall-clock midnight.
pub async fn daily(service: &MemoryService, query: &DailyQuery) -> Result<DailyStats, OpError> {
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    let tz = query.tz.as_deref();
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(OpError::bad_request(format!(
            "days must be between 1 and {MAX_DAYS}, not {days}"
        )));
    }
    let zone = timeexpr::parse_tz(tz)?;
    let now = Timestamp::now();
    let offset = zone.to_offset(now).seconds();
    let epoch = Date::constant(1970, 1, 1);
    let today = now.to_zoned(zone.clone()).date();
    let first = today
        .checked_sub((i64::from(days) - 1).days())
        .map_err(|e| OpError::bad_request(e.to_string()))?;
    let first_day = i64::from(epoch.until(first).map_err(out_of_range)?.get_days());
    let since = first_day as f64 * 86_400.0 - f64::from(offset);
    let counted = service.daily_counts(since, offset).await?;
    let mut out = Vec::with_capacity(days as usize);
    let mut counted = counted.into_iter().peekable();
    for i in 0..i64::from(days) {
        let day = first_day + i;
        while counted.next_if(|(d, _)| *d < day).is_some() {}
        let count = counted.next_if(|(d, _)| *d == day).map_or(0, |(_, n)| n);
        let date = first
            .checked_add(i.days())
            .map_err(|e| OpError::bad_request(e.to_string()))?;
        out.push(DailyCount {
            date: date.to_string(),
            count,
        });
    }
    Ok(DailyStats {
        days: out,
        tz: zone_name(&zone),
    })
}

/// A date arithmetic failure: only a window reaching outside the years jiff knows.
fn out_of_range(error: jiff::Error) -> OpError {
    OpError::bad_request(format!("cannot compute the days: {error}"))
}

fn zone_name(zone: &TimeZone) -> String {
    zone.iana_name().map_or_else(
        || zone.to_offset(Timestamp::now()).to_string(),
        str::to_owned,
    )
}
