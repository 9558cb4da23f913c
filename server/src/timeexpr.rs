//! Natural time phrases ("yesterday", "last week", "since march") as time ranges,
//! for `POST /api/search/by-time`.
//!
//! A phrase is read relative to the request's `now`, and calendar boundaries
//! (midnight, Monday, the first of a month) fall in the caller's time zone, so
//! "yesterday" for a user in Tokyo is not yesterday in UTC. All calendar and zone
//! arithmetic goes through jiff, which is why a day across a DST change lasts 23
//! or 25 hours here rather than 24.
//!
//! # Grammar
//!
//! Words are compared case-insensitively; surrounding whitespace, a trailing
//! period and a leading "in", "on", "during", "over" or "the" are ignored.
//! A *count* is a number ≥ 1, a number word "one" to "twelve", or "a"/"an".
//! A *unit* is minute, hour, day, week, month, quarter or year (plural or short:
//! "min", "h", "hr", "d", "w", "wk", "y", "yr").
//!
//! | phrase | range |
//! |---|---|
//! | `today`, `yesterday`, `the day before yesterday` | that calendar day |
//! | `this week\|month\|quarter\|year` | the calendar unit containing today (its future part included) |
//! | `last week\|month\|quarter\|year`, `previous …` | the calendar unit before that |
//! | `last\|past` *count unit*, `last 24h`, `past 7d`, `past week`, `last hour` | rolling: now minus that much, up to now |
//! | *count* `days\|weeks\|months\|quarters\|years ago` | that calendar unit ("2 weeks ago" is a Monday-to-Monday week) |
//! | *count* `hours\|minutes ago` | one hour (minute) long, ending *count − 1* units before now |
//! | `monday` … `sunday` (or `mon`, `tue`, …) | the most recent such day, today included |
//! | `last monday` | the most recent such day strictly before today |
//! | `this monday` | that day of the current week, even if still ahead |
//! | `march` (or `mar`), `q1` … `q4`, `spring`, `summer`, `fall`/`autumn`, `winter` | the most recent one that has started |
//! | `last march`, `last q3`, `last summer` | the most recent one that has ended |
//! | `this march`, `this winter` | the one in progress, else the one in the current year |
//! | `march 2025`, `q3 2025`, `summer 2025` | that one |
//! | `2025-03-04`, `2025-03`, `2025` | that day, month or year |
//! | `since X` | from the start of X, unbounded after |
//! | `before X` | unbounded before, up to the start of X |
//! | `between X and Y`, `from X to Y`, `from X until Y` | the start of X to the end of Y, inclusive of Y (either order) |
//!
//! Weeks start on Monday. Seasons are meteorological and northern-hemisphere:
//! spring is March to May, summer June to August, fall September to November and
//! winter December to February. A winter is named by the year its December falls
//! in, so "winter 2025" runs from 2025-12-01 to 2026-03-01. Sub-week units in
//! "last hour" or "last day" are rolling, because a calendar hour is rarely meant.
//! A count of zero ("last 0 days") is refused rather than read as an empty range.

use jiff::civil::{Date, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp, Zoned};

/// Phrases quoted in every "not understood" message, so the user can copy one that works.
const EXAMPLES: &str = "\"today\", \"yesterday\", \"last week\", \"this month\", \
    \"last 3 days\", \"2 weeks ago\", \"monday\", \"march 2025\", \"q3\", \"last summer\", \
    \"2025-03-04\", \"since 2025-01\", \"between monday and today\"";

/// A half-open range [start, end) in float Unix epoch seconds; None = unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// Why a phrase, zone or instant was refused. Every message is shown to the user
/// in a 400 response, so each one says what would have been accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimeExprError {
    #[error("the time expression is empty; try for example {examples}", examples = EXAMPLES)]
    Empty,
    #[error(
        "could not understand the time expression {0:?}; try for example {examples}",
        examples = EXAMPLES
    )]
    Unrecognized(String),
    #[error("the time expression {0:?} reaches outside the supported years, -9999 to 9999")]
    OutOfRange(String),
    #[error(
        "unknown time zone {0:?}; use an IANA name like \"Europe/Paris\", \"UTC\", \
         or an offset like \"+02:00\", \"-0530\" or \"+2\""
    )]
    BadTimeZone(String),
    #[error(
        "could not read {0:?} as a time; use RFC 3339 like \"2026-11-20T10:00:00Z\", \
         a date like \"2026-11-20\", or epoch seconds like \"1795687200\""
    )]
    BadInstant(String),
}

/// Parses `tz`: None or "" = UTC; an IANA name; "UTC"/"Z"; or a fixed offset "+02:00", "-0530", "+2".
///
/// "UTC+2" and "GMT-5" are read as offsets too, with the sign people mean (the
/// IANA "Etc/GMT+2" keeps its inverted POSIX sign, because that is its name).
pub fn parse_tz(tz: Option<&str>) -> Result<TimeZone, TimeExprError> {
    let name = tz.unwrap_or("").trim();
    if name.is_empty() || name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("z") {
        return Ok(TimeZone::UTC);
    }
    let lower = name.to_ascii_lowercase();
    let bare = lower
        .strip_prefix("utc")
        .or_else(|| lower.strip_prefix("gmt"));
    if let Some(offset) = parse_offset(bare.unwrap_or(&lower)) {
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| TimeExprError::BadTimeZone(excerpt(name)))
}

/// Reads "+HH:MM", "+HHMM", "+HMM", "+HH" or "+H"; None for anything else,
/// including a sign-less string, so IANA names fall through to the database.
fn parse_offset(s: &str) -> Option<Offset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    // The split below counts bytes, which is only safe on ASCII ("+中" once panicked).
    if !rest.is_ascii() {
        return None;
    }
    let (hours, minutes) = match rest.split_once(':') {
        Some(parts) => parts,
        None if rest.len() <= 2 => (rest, "0"),
        None => rest.split_at(rest.len().checked_sub(2)?),
    };
    let digits = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if minutes >= 60 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Parses one instant given as RFC 3339 ("2026-11-20T10:00:00Z", offset allowed), a plain date "2026-11-20" (midnight in tz), or a float epoch-seconds string.
///
/// A date-time without an offset ("2026-11-20T10:00") is read as wall-clock time
/// in `tz`, the same way a plain date is.
pub fn parse_instant(s: &str, tz: &TimeZone) -> Result<f64, TimeExprError> {
    let s = s.trim();
    let bad = || TimeExprError::BadInstant(excerpt(s));
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(epoch(ts));
    }
    if let Ok(local) = s.parse::<jiff::civil::DateTime>() {
        let zoned = local.to_zoned(tz.clone()).map_err(|_| bad())?;
        return Ok(epoch(zoned.timestamp()));
    }
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() => Ok(secs),
        _ => Err(bad()),
    }
}

/// Longest phrase [`find`] looks for, in words ("between last monday and this friday").
const MAX_PHRASE_WORDS: usize = 7;

/// Reads `text` as a phrase, or finds the longest phrase inside it, so a whole
/// question ("what did we decide last week?") limits itself to last week. Punctuation
/// around words is ignored. Fails with the whole text's error when no part parses.
pub fn find(text: &str, now: Timestamp, tz: &TimeZone) -> Result<TimeRange, TimeExprError> {
    let whole = match parse(text, now, tz) {
        Ok(range) => return Ok(range),
        Err(e) => e,
    };
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '-'))
        .filter(|w| !w.is_empty())
        .collect();
    for len in (1..=MAX_PHRASE_WORDS.min(words.len())).rev() {
        for window in words.windows(len) {
            if let Ok(range) = parse(&window.join(" "), now, tz) {
                return Ok(range);
            }
        }
    }
    Err(whole)
}

/// Parses a phrase relative to `now`, with calendar boundaries (midnight, week start, month start) in `tz`.
pub fn parse(expr: &str, now: Timestamp, tz: &TimeZone) -> Result<TimeRange, TimeExprError> {
    let trimmed = expr.trim();
    let text = trimmed.strip_suffix('.').unwrap_or(trimmed).to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Err(TimeExprError::Empty);
    }
    let now = now.to_zoned(tz.clone());
    let ctx = Ctx {
        today: now.date(),
        now,
    };
    ctx.range(&words).map_err(|fail| match fail {
        Fail::NoMatch => TimeExprError::Unrecognized(excerpt(trimmed)),
        Fail::OutOfRange => TimeExprError::OutOfRange(excerpt(trimmed)),
    })
}

/// The start of a user's text, for an error message: a whole megabyte quoted back
/// would make the error larger than the request.
pub fn excerpt(text: &str) -> String {
    const CHARS: usize = 64;
    match text.char_indices().nth(CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Float seconds, the unit the store and the REST contract use for timestamps.
fn epoch(ts: Timestamp) -> f64 {
    ts.as_duration().as_secs_f64()
}

/// Why a rule failed, before the caller's text is attached: the words fit no
/// rule, or they did but the dates overflowed what jiff can represent.
#[derive(Debug)]
enum Fail {
    NoMatch,
    OutOfRange,
}

impl From<jiff::Error> for Fail {
    fn from(_: jiff::Error) -> Self {
        Fail::OutOfRange
    }
}

/// A bounded stretch of time. Every phrase except "since" and "before" denotes one,
/// which is what lets those two and "between" combine any phrase.
#[derive(Debug, Clone, Copy)]
struct Period {
    start: Timestamp,
    end: Timestamp,
}

/// The calendar units a count can apply to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn from_word(word: &str) -> Option<Unit> {
        Some(match word {
            "minute" | "minutes" | "min" | "mins" => Unit::Minute,
            "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Hour,
            "day" | "days" | "d" => Unit::Day,
            "week" | "weeks" | "w" | "wk" | "wks" => Unit::Week,
            "month" | "months" => Unit::Month,
            "quarter" | "quarters" => Unit::Quarter,
            "year" | "years" | "y" | "yr" | "yrs" => Unit::Year,
            _ => return None,
        })
    }

    /// `count` of this unit as a jiff span; days and larger are calendar units, so
    /// adding them to a zoned time keeps the wall clock across DST changes.
    fn times(self, count: i64) -> Result<Span, Fail> {
        let span = Span::new();
        Ok(match self {
            Unit::Minute => span.try_minutes(count)?,
            Unit::Hour => span.try_hours(count)?,
            Unit::Day => span.try_days(count)?,
            Unit::Week => span.try_weeks(count)?,
            Unit::Month => span.try_months(count)?,
            Unit::Quarter => span.try_months(count.saturating_mul(3))?,
            Unit::Year => span.try_years(count)?,
        })
    }

    /// Only these have a "this"/"last" calendar reading; "last hour" is rolling.
    fn is_calendar(self) -> bool {
        matches!(self, Unit::Week | Unit::Month | Unit::Quarter | Unit::Year)
    }
}

/// Something that comes round again: a weekday each week, or a month, quarter or
/// season each year. One type lets "monday", "march", "q3" and "summer" share the
/// bare, "last", "this" and "with a year" rules.
#[derive(Debug, Clone, Copy)]
enum Recurring {
    Weekday(Weekday),
    /// `months` months starting on the first of `month`; a winter runs into the next year.
    InYear {
        month: i8,
        months: i8,
    },
}

impl Recurring {
    fn from_word(word: &str) -> Option<Recurring> {
        if let Some(day) = weekday(word) {
            return Some(Recurring::Weekday(day));
        }
        let (month, months) = match word {
            "spring" => (3, 3),
            "summer" => (6, 3),
            "fall" | "autumn" => (9, 3),
            "winter" => (12, 3),
            "q1" | "q2" | "q3" | "q4" => (3 * (word.as_bytes()[1] - b'0') as i8 - 2, 3),
            _ => (month(word)?, 1),
        };
        Some(Recurring::InYear { month, months })
    }

    /// The occurrence `back` cycles (weeks or years) before the one of `today`'s cycle.
    fn occurrence(self, today: Date, back: i16) -> Result<(Date, Date), Fail> {
        match self {
            Recurring::Weekday(day) => {
                let offset = i64::from(day.to_monday_zero_offset());
                let start = week_start(today)?
                    .checked_sub(Span::new().weeks(back))?
                    .checked_add(Span::new().days(offset))?;
                Ok((start, start.tomorrow()?))
            }
            Recurring::InYear { month, months } => {
                let start = Date::new(today.year() - back, month, 1)?;
                Ok((start, start.checked_add(Span::new().months(months))?))
            }
        }
    }

    /// The latest occurrence satisfying `wanted`. Two cycles back is always enough:
    /// in January the last ended winter began two Decembers ago.
    fn latest(
        self,
        today: Date,
        wanted: impl Fn(Date, Date) -> bool,
    ) -> Result<(Date, Date), Fail> {
        for back in 0..=2 {
            let (start, end) = self.occurrence(today, back)?;
            if wanted(start, end) {
                return Ok((start, end));
            }
        }
        Err(Fail::NoMatch)
    }
}

/// A weekday from its name or the abbreviations people type in a hurry.
fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" | "tues" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// A month number from its name or any three-letter start ("mar"), plus "sept".
fn month(word: &str) -> Option<i8> {
    const NAMES: &str = "january february march april may june july august september october \
        november december";
    let word = if word == "sept" { "sep" } else { word };
    let found = NAMES
        .split_whitespace()
        .position(|name| name == word || (word.len() == 3 && name.starts_with(word)))?;
    Some(found as i8 + 1)
}

/// A count: digits (1 or more; zero is refused), a number word up to twelve, or "a"/"an".
fn count(word: &str) -> Option<i64> {
    const WORDS: &str = "one two three four five six seven eight nine ten eleven twelve";
    if word == "a" || word == "an" {
        return Some(1);
    }
    if let Some(i) = WORDS.split(' ').position(|w| w == word) {
        return Some(i as i64 + 1);
    }
    let n: i64 = word
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| word.parse().ok())??;
    (n > 0).then_some(n)
}

/// "3 days", "24h", or a bare "week" (one of it).
fn count_unit(words: &[&str]) -> Option<(i64, Unit)> {
    match words {
        [n, unit] => Some((count(n)?, Unit::from_word(unit)?)),
        [word] => {
            let split = word
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(word.len());
            match word.split_at(split) {
                ("", unit) => Some((1, Unit::from_word(unit)?)),
                (n, unit) => Some((count(n)?, Unit::from_word(unit)?)),
            }
        }
        _ => None,
    }
}

/// The Monday on or before `day`; Monday because ISO 8601 and most of our users say so.
fn week_start(day: Date) -> Result<Date, Fail> {
    let offset = i64::from(day.weekday().to_monday_zero_offset());
    Ok(day.checked_sub(Span::new().days(offset))?)
}

/// A four-digit year, the only year form accepted, so "2" is never a year.
fn year(word: &str) -> Option<i16> {
    (word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit())).then(|| word.parse().ok())?
}

/// "2025-03-04", "2025-03" or "2025" as the first day and length of what it names.
fn explicit_date(word: &str) -> Option<(Date, Span)> {
    let parts: Vec<&str> = word.split('-').collect();
    let number = |p: &str| -> Option<i8> {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let y = year(parts[0])?;
    let (start, span) = match parts[1..] {
        [] => (Date::new(y, 1, 1).ok()?, Span::new().years(1)),
        [m] => (Date::new(y, number(m)?, 1).ok()?, Span::new().months(1)),
        [m, d] => (
            Date::new(y, number(m)?, number(d)?).ok()?,
            Span::new().days(1),
        ),
        _ => return None,
    };
    Some((start, span))
}

/// What a phrase is read against: the request instant in the caller's zone, and its date.
struct Ctx {
    now: Zoned,
    today: Date,
}

impl Ctx {
    /// The top level: "since", "before", "between" and "from" wrap any period.
    fn range(&self, words: &[&str]) -> Result<TimeRange, Fail> {
        let bounded = |p: Period| (Some(p.start), Some(p.end));
        let (start, end) = match words {
            ["since", rest @ ..] => (Some(self.period(rest)?.start), None),
            ["before", rest @ ..] => (None, Some(self.period(rest)?.start)),
            ["between", rest @ ..] => bounded(self.between(rest, &["and"])?),
            ["from", rest @ ..] => bounded(self.between(rest, &["to", "until"])?),
            _ => bounded(self.period(words)?),
        };
        let (start, end) = (start.map(epoch), end.map(epoch));
        Ok(TimeRange { start, end })
    }

    /// Both ends, in either order: "between today and monday" covers the same
    /// days as "between monday and today", since a reversed range finds nothing.
    fn between(&self, words: &[&str], joins: &[&str]) -> Result<Period, Fail> {
        let at = words
            .iter()
            .position(|w| joins.contains(w))
            .ok_or(Fail::NoMatch)?;
        let (a, b) = (self.period(&words[..at])?, self.period(&words[at + 1..])?);
        let (start, end) = (a.start.min(b.start), a.end.max(b.end));
        Ok(Period { start, end })
    }

    fn period(&self, words: &[&str]) -> Result<Period, Fail> {
        let fillers = ["in", "on", "during", "over", "the"];
        let skip = words.iter().take_while(|w| fillers.contains(w)).count();
        match &words[skip..] {
            ["today"] => self.calendar(Unit::Day, 0),
            ["yesterday"] => self.calendar(Unit::Day, 1),
            ["day", "before", "yesterday"] => self.calendar(Unit::Day, 2),
            ["this", word] => self.this(word),
            ["last" | "previous", word] => self.last(word),
            ["last" | "previous" | "past", rest @ ..] => {
                let (n, unit) = count_unit(rest).ok_or(Fail::NoMatch)?;
                self.rolling(unit, n)
            }
            [rest @ .., "ago"] => {
                let (n, unit) = count_unit(rest).ok_or(Fail::NoMatch)?;
                self.calendar(unit, n)
            }
            [word] => self.single(word),
            [word, y] => {
                let (Some(Recurring::InYear { month, months }), Some(y)) =
                    (Recurring::from_word(word), year(y))
                else {
                    return Err(Fail::NoMatch);
                };
                let start = Date::new(y, month, 1)?;
                self.dates(start, start.checked_add(Span::new().months(months))?)
            }
            _ => Err(Fail::NoMatch),
        }
    }

    /// One word: a weekday, month, quarter or season (latest started), or a date.
    fn single(&self, word: &str) -> Result<Period, Fail> {
        if let Some(recurring) = Recurring::from_word(word) {
            let (start, end) = recurring.latest(self.today, |start, _| start <= self.today)?;
            return self.dates(start, end);
        }
        let (start, length) = explicit_date(word).ok_or(Fail::NoMatch)?;
        self.dates(start, start.checked_add(length)?)
    }

    fn this(&self, word: &str) -> Result<Period, Fail> {
        if let Some(unit) = Unit::from_word(word).filter(|u| u.is_calendar()) {
            return self.calendar(unit, 0);
        }
        let recurring = Recurring::from_word(word).ok_or(Fail::NoMatch)?;
        let previous = recurring.occurrence(self.today, 1)?;
        let (start, end) = if (previous.0..previous.1).contains(&self.today) {
            previous
        } else {
            recurring.occurrence(self.today, 0)?
        };
        self.dates(start, end)
    }

    /// "last week" is the previous calendar week, "last monday" the previous Monday
    /// that has fully ended, and "last hour" or "last 24h" a rolling window.
    fn last(&self, word: &str) -> Result<Period, Fail> {
        if let Some(unit) = Unit::from_word(word).filter(|u| u.is_calendar()) {
            return self.calendar(unit, 1);
        }
        if let Some(recurring) = Recurring::from_word(word) {
            let (start, end) = recurring.latest(self.today, |_, end| end <= self.today)?;
            return self.dates(start, end);
        }
        let (n, unit) = count_unit(&[word]).ok_or(Fail::NoMatch)?;
        self.rolling(unit, n)
    }

    /// From `n` units before now up to now.
    fn rolling(&self, unit: Unit, n: i64) -> Result<Period, Fail> {
        let start = self.now.checked_sub(unit.times(n)?)?.timestamp();
        Ok(Period {
            start,
            end: self.now.timestamp(),
        })
    }

    /// The calendar unit `back` units before the one containing today; for hours
    /// and minutes, which have no useful calendar reading, the unit-long window
    /// ending `back - 1` units before now.
    fn calendar(&self, unit: Unit, back: i64) -> Result<Period, Fail> {
        let current = match unit {
            Unit::Minute | Unit::Hour => {
                let start = self.now.checked_sub(unit.times(back)?)?;
                let end = start.checked_add(unit.times(1)?)?.timestamp();
                return Ok(Period {
                    start: start.timestamp(),
                    end,
                });
            }
            Unit::Day => self.today,
            Unit::Week => week_start(self.today)?,
            Unit::Month => self.today.first_of_month(),
            Unit::Quarter => Date::new(self.today.year(), (self.today.month() - 1) / 3 * 3 + 1, 1)?,
            Unit::Year => self.today.first_of_year(),
        };
        let start = current.checked_sub(unit.times(back)?)?;
        self.dates(start, start.checked_add(unit.times(1)?)?)
    }

    /// From midnight of `start` to midnight of `end` in the caller's zone; where
    /// midnight does not exist (a DST gap), the day starts at the first instant after.
    fn dates(&self, start: Date, end: Date) -> Result<Period, Fail> {
        let midnight = |day: Date| day.to_zoned(self.now.time_zone().clone());
        let (start, end) = (midnight(start)?.timestamp(), midnight(end)?.timestamp());
        Ok(Period { start, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Saturday afternoon, UTC; every test reads phrases against a fixed instant.
    const NOW: &str = "2026-11-21 15:30";
    /// A Sunday in January, for phrases that reach back across the year boundary.
    const JANUARY: &str = "2027-01-10 12:00";

    /// A UTC wall-clock time, "2026-11-21 15:30", or a bare date for midnight.
    fn utc(s: &str) -> Timestamp {
        let local: jiff::civil::DateTime = s.parse().unwrap();
        local.to_zoned(TimeZone::UTC).unwrap().timestamp()
    }

    /// `utc` as epoch seconds, with "" for unbounded.
    fn ts(s: &str) -> Option<f64> {
        (!s.is_empty()).then(|| epoch(utc(s)))
    }

    fn at(expr: &str, now: &str, tz: &str) -> Result<TimeRange, TimeExprError> {
        parse(expr, utc(now), &parse_tz(Some(tz)).unwrap())
    }

    /// Each case is (phrase, start, end) in the forms `ts` reads.
    fn check(now: &str, tz: &str, cases: &[(&str, &str, &str)]) {
        for (expr, start, end) in cases {
            let (start, end) = (ts(start), ts(end));
            let want = TimeRange { start, end };
            assert_eq!(at(expr, now, tz), Ok(want), "{expr:?} at {now} in {tz}");
        }
    }

    /// A phrase inside a question is found, the longest one winning; text without a
    /// phrase keeps the whole text's error.
    #[test]
    fn finds_a_phrase_inside_text() {
        let tz = TimeZone::UTC;
        let found = |text: &str| find(text, utc(NOW), &tz);
        let last_week = parse("last week", utc(NOW), &tz);
        assert_eq!(found("what did we decide last week?"), last_week);
        assert_eq!(found("Last week."), last_week);
        assert_eq!(
            found("notes from the day before yesterday about the API"),
            parse("the day before yesterday", utc(NOW), &tz)
        );
        assert_eq!(
            found("the dog"),
            Err(TimeExprError::Unrecognized("the dog".into()))
        );
    }

    /// The fixtures are what their comments say, and DST ends in New York on Sunday 1 November.
    #[test]
    fn fixture_dates() {
        let weekday = |s| utc(s).to_zoned(TimeZone::UTC).weekday();
        assert_eq!(weekday(NOW), Weekday::Saturday);
        assert_eq!(weekday(JANUARY), Weekday::Sunday);
        assert_eq!(weekday("2026-11-01"), Weekday::Sunday);
    }

    /// Today, yesterday and the day before are whole UTC days; case, spacing and a final period do not matter.
    #[test]
    fn named_days() {
        let cases = [
            ("today", "2026-11-21", "2026-11-22"),
            ("yesterday", "2026-11-20", "2026-11-21"),
            ("  Yesterday. ", "2026-11-20", "2026-11-21"),
            ("the day before yesterday", "2026-11-19", "2026-11-20"),
            ("DAY BEFORE YESTERDAY", "2026-11-19", "2026-11-20"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// In New York a winter day starts at 05:00Z, so "today" and "yesterday" shift accordingly.
    #[test]
    fn new_york_day_boundaries() {
        let cases = [
            ("today", "2026-11-21 05:00", "2026-11-22 05:00"),
            ("yesterday", "2026-11-20 05:00", "2026-11-21 05:00"),
        ];
        check(NOW, "America/New_York", &cases);
    }

    /// At 20:00Z it is already the next day at +05:30, so "today" is that day, from 18:30Z.
    #[test]
    fn positive_offset_moves_today_forward() {
        let cases = [
            ("today", "2026-11-21 18:30", "2026-11-22 18:30"),
            ("this week", "2026-11-15 18:30", "2026-11-22 18:30"),
        ];
        check("2026-11-21 20:00", "+05:30", &cases);
    }

    /// The day DST ends in New York lasts 25 hours, from 04:00Z (EDT) to 05:00Z (EST) next day.
    #[test]
    fn dst_day_is_25_hours() {
        let got = at("20 days ago", NOW, "America/New_York").unwrap();
        assert_eq!(got.start, ts("2026-11-01 04:00"));
        assert_eq!(got.end.unwrap() - got.start.unwrap(), 25.0 * 3600.0);
    }

    /// Rolling days are calendar days: a week back across the DST change keeps the wall clock (169 h).
    #[test]
    fn rolling_days_keep_wall_clock_across_dst() {
        let now = "2026-11-05 17:00";
        check(
            now,
            "America/New_York",
            &[("last 7 days", "2026-10-29 16:00", now)],
        );
    }

    /// This/last week, month, quarter and year are whole calendar units, weeks starting Monday.
    #[test]
    fn this_and_last_units() {
        let cases = [
            ("this week", "2026-11-16", "2026-11-23"),
            ("last week", "2026-11-09", "2026-11-16"),
            ("previous week", "2026-11-09", "2026-11-16"),
            ("this month", "2026-11-01", "2026-12-01"),
            ("last month", "2026-10-01", "2026-11-01"),
            ("this quarter", "2026-10-01", "2027-01-01"),
            ("last quarter", "2026-07-01", "2026-10-01"),
            ("this year", "2026-01-01", "2027-01-01"),
            ("last year", "2025-01-01", "2026-01-01"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// "last/past N units" and their short forms end at now and start that much earlier.
    #[test]
    fn rolling_windows() {
        let cases = [
            ("last 3 days", "2026-11-18 15:30", NOW),
            ("past 2 hours", "2026-11-21 13:30", NOW),
            ("last 24h", "2026-11-20 15:30", NOW),
            ("past 7d", "2026-11-14 15:30", NOW),
            ("in the last two weeks", "2026-11-07 15:30", NOW),
            ("past week", "2026-11-14 15:30", NOW),
            ("last hour", "2026-11-21 14:30", NOW),
            ("last day", "2026-11-20 15:30", NOW),
            ("last 90 minutes", "2026-11-21 14:00", NOW),
            ("last 6 months", "2026-05-21 15:30", NOW),
            ("past 1 year", "2025-11-21 15:30", NOW),
        ];
        check(NOW, "UTC", &cases);
    }

    /// "N days/weeks/months/years ago" is that calendar unit; hours and minutes are unit-long windows.
    #[test]
    fn ago() {
        let cases = [
            ("3 days ago", "2026-11-18", "2026-11-19"),
            ("a week ago", "2026-11-09", "2026-11-16"),
            ("2 weeks ago", "2026-11-02", "2026-11-09"),
            ("two months ago", "2026-09-01", "2026-10-01"),
            ("1 year ago", "2025-01-01", "2026-01-01"),
            ("an hour ago", "2026-11-21 14:30", NOW),
            ("3 hours ago", "2026-11-21 12:30", "2026-11-21 13:30"),
            ("5 minutes ago", "2026-11-21 15:25", "2026-11-21 15:26"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// A bare weekday includes today; "last" means strictly before today; "this" is in the current week.
    #[test]
    fn weekdays() {
        let cases = [
            ("saturday", "2026-11-21", "2026-11-22"),
            ("last saturday", "2026-11-14", "2026-11-15"),
            ("friday", "2026-11-20", "2026-11-21"),
            ("last friday", "2026-11-20", "2026-11-21"),
            ("monday", "2026-11-16", "2026-11-17"),
            ("on tue", "2026-11-17", "2026-11-18"),
            ("sunday", "2026-11-15", "2026-11-16"),
            ("this sunday", "2026-11-22", "2026-11-23"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// A bare month is the latest that has started, "last" the latest ended, and a year picks one.
    #[test]
    fn months() {
        let cases = [
            ("march", "2026-03-01", "2026-04-01"),
            ("in march", "2026-03-01", "2026-04-01"),
            ("november", "2026-11-01", "2026-12-01"),
            ("last november", "2025-11-01", "2025-12-01"),
            ("december", "2025-12-01", "2026-01-01"),
            ("this december", "2026-12-01", "2027-01-01"),
            ("sept", "2026-09-01", "2026-10-01"),
            ("march 2025", "2025-03-01", "2025-04-01"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// q1..q4 are this year's when started, else last year's; a year picks one.
    #[test]
    fn quarters() {
        let cases = [
            ("q1", "2026-01-01", "2026-04-01"),
            ("q4", "2026-10-01", "2027-01-01"),
            ("last q4", "2025-10-01", "2026-01-01"),
            ("q3 2025", "2025-07-01", "2025-10-01"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// Seasons are meteorological; winter spans the new year and is named by its December.
    #[test]
    fn seasons() {
        let cases = [
            ("summer", "2026-06-01", "2026-09-01"),
            ("last summer", "2026-06-01", "2026-09-01"),
            ("autumn", "2026-09-01", "2026-12-01"),
            ("last fall", "2025-09-01", "2025-12-01"),
            ("spring", "2026-03-01", "2026-06-01"),
            ("winter", "2025-12-01", "2026-03-01"),
            ("this winter", "2026-12-01", "2027-03-01"),
            ("summer 2025", "2025-06-01", "2025-09-01"),
            ("winter 2024", "2024-12-01", "2025-03-01"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// In January, "last" phrases and the latest quarter or winter reach into the previous year.
    #[test]
    fn january_year_boundary() {
        let cases = [
            ("last month", "2026-12-01", "2027-01-01"),
            ("last week", "2026-12-28", "2027-01-04"),
            ("last quarter", "2026-10-01", "2027-01-01"),
            ("last year", "2026-01-01", "2027-01-01"),
            ("q4", "2026-10-01", "2027-01-01"),
            ("q1", "2027-01-01", "2027-04-01"),
            ("december", "2026-12-01", "2027-01-01"),
            ("winter", "2026-12-01", "2027-03-01"),
            ("this winter", "2026-12-01", "2027-03-01"),
            ("last winter", "2025-12-01", "2026-03-01"),
            ("2 months ago", "2026-11-01", "2026-12-01"),
        ];
        check(JANUARY, "UTC", &cases);
    }

    /// ISO dates name a day, a month or a year; impossible or short forms are not understood.
    #[test]
    fn explicit_dates() {
        let cases = [
            ("2025-03-04", "2025-03-04", "2025-03-05"),
            ("2025-03", "2025-03-01", "2025-04-01"),
            ("2025", "2025-01-01", "2026-01-01"),
            ("on 2024-02-29", "2024-02-29", "2024-03-01"),
        ];
        check(NOW, "UTC", &cases);
        for bad in ["2025-13", "2025-02-30", "25-03-04", "2025-3"] {
            assert_eq!(
                at(bad, NOW, "UTC"),
                Err(TimeExprError::Unrecognized(bad.to_string()))
            );
        }
    }

    /// "since" and "before" leave one end open; "between" and "from … to" span both ends in either order.
    #[test]
    fn ranges() {
        let cases = [
            ("since 2025-03", "2025-03-01", ""),
            ("since 3 days ago", "2026-11-18", ""),
            ("before yesterday", "", "2026-11-20"),
            ("between monday and today", "2026-11-16", "2026-11-22"),
            ("between today and monday", "2026-11-16", "2026-11-22"),
            (
                "between 2025-01-01 and 2025-01-31",
                "2025-01-01",
                "2025-02-01",
            ),
            ("from march to may", "2026-03-01", "2026-06-01"),
        ];
        check(NOW, "UTC", &cases);
    }

    /// Unknown phrases, zero counts and half ranges are refused, quoting the phrase and examples.
    #[test]
    fn unrecognized_lists_examples() {
        let bad = [
            "next blursday",
            "last 0 days",
            "0 hours ago",
            "since",
            "between monday",
            "tomorrow",
        ];
        for expr in bad {
            let err = at(expr, NOW, "UTC").unwrap_err();
            assert_eq!(err, TimeExprError::Unrecognized(expr.to_string()));
            let message = err.to_string();
            assert!(
                message.contains(expr) && message.contains("\"last week\""),
                "{message}"
            );
        }
    }

    /// An empty or blank phrase is its own error, still suggesting phrases.
    #[test]
    fn empty_lists_examples() {
        for blank in ["", "   ", "."] {
            let err = at(blank, NOW, "UTC").unwrap_err();
            assert_eq!(err, TimeExprError::Empty);
            assert!(err.to_string().contains("\"yesterday\""));
        }
    }

    /// Spans beyond jiff's calendar give an out-of-range error, not a panic.
    #[test]
    fn out_of_range() {
        for far in ["last 100000 years", "9999", "20000 years ago"] {
            assert_eq!(
                at(far, NOW, "UTC"),
                Err(TimeExprError::OutOfRange(far.to_string()))
            );
        }
    }

    /// Zones come as nothing (UTC), UTC/Z, an IANA name, or an offset in several spellings.
    #[test]
    fn time_zones() {
        let fixed = |secs| Ok(TimeZone::fixed(Offset::from_seconds(secs).unwrap()));
        assert_eq!(parse_tz(None), Ok(TimeZone::UTC));
        assert_eq!(parse_tz(Some(" ")), Ok(TimeZone::UTC));
        assert_eq!(parse_tz(Some("utc")), Ok(TimeZone::UTC));
        assert_eq!(parse_tz(Some("Z")), Ok(TimeZone::UTC));
        assert_eq!(
            parse_tz(Some("Europe/Paris")),
            Ok(TimeZone::get("Europe/Paris").unwrap())
        );
        assert_eq!(parse_tz(Some("+02:00")), fixed(7200));
        assert_eq!(parse_tz(Some("-0530")), fixed(-19800));
        assert_eq!(parse_tz(Some("+2")), fixed(7200));
        assert_eq!(parse_tz(Some("UTC+5:30")), fixed(19800));
    }

    /// A bad zone is named back with the accepted forms.
    #[test]
    fn bad_time_zone() {
        for bad in ["Mars/Olympus", "+02:75", "+123:00", "++2", "5"] {
            let err = parse_tz(Some(bad)).unwrap_err();
            assert_eq!(err, TimeExprError::BadTimeZone(bad.to_string()));
            let message = err.to_string();
            assert!(message.contains("\"Europe/Paris\"") && message.contains("\"+02:00\""));
        }
    }

    /// Instants come as RFC 3339 with any offset, a date or date-time in the zone, or epoch seconds.
    #[test]
    fn instants() {
        let ny = parse_tz(Some("America/New_York")).unwrap();
        let read = |s| parse_instant(s, &ny).ok();
        assert_eq!(read("2026-11-20T10:00:00Z"), ts("2026-11-20 10:00"));
        assert_eq!(read("2026-11-20T12:00:00+02:00"), ts("2026-11-20 10:00"));
        assert_eq!(read("2026-11-20"), ts("2026-11-20 05:00"));
        assert_eq!(read("2026-11-20T10:00"), ts("2026-11-20 15:00"));
        assert_eq!(read(" 1795687200.5 "), Some(1_795_687_200.5));
    }

    /// Anything else is refused with the accepted forms, non-finite numbers included.
    #[test]
    fn bad_instant() {
        for bad in ["yesterday", "NaN", "inf", "2026-13-01", ""] {
            let err = parse_instant(bad, &TimeZone::UTC).unwrap_err();
            assert_eq!(err, TimeExprError::BadInstant(bad.to_string()));
            assert!(err.to_string().contains("RFC 3339"));
        }
    }

    /// `tz: "+中"` reached a byte split inside a character and panicked the handler.
    #[test]
    fn offsets_with_multibyte_characters_are_refused() {
        for bad in ["+中", "-中", "+1中", "UTC+中中", "+é:00", "+0é"] {
            assert_eq!(
                parse_tz(Some(bad)),
                Err(TimeExprError::BadTimeZone(bad.trim().to_string()))
            );
        }
    }
}

/// Every parser of a user's text answers, Ok or Err, for any input: none panics.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Words the grammar knows, glued to arbitrary text, so the search reaches deep
    /// rules and not only the "not understood" branch.
    fn phrase() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("last".to_string()),
            Just("this".to_string()),
            Just("since".to_string()),
            Just("between".to_string()),
            Just("and".to_string()),
            Just("ago".to_string()),
            Just("q3".to_string()),
            Just("march".to_string()),
            Just("winter".to_string()),
            Just("2025-03".to_string()),
            Just("-9999".to_string()),
            Just("99999".to_string()),
            "[0-9]{1,20}",
            any::<String>(),
        ];
        prop::collection::vec(word, 0..8).prop_map(|words| words.join(" "))
    }

    fn zone() -> impl Strategy<Value = String> {
        prop_oneof![
            "[+-][0-9:中é]{0,6}",
            "(utc|gmt|UTC)[+-]?.{0,4}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn zones_never_panic(tz in zone()) {
            let _ = parse_tz(Some(&tz));
        }

        #[test]
        fn phrases_never_panic(text in phrase(), now in -62_000_000_000i64..250_000_000_000, tz in zone()) {
            let tz = parse_tz(Some(&tz)).unwrap_or(TimeZone::UTC);
            let now = Timestamp::from_second(now).unwrap_or(Timestamp::UNIX_EPOCH);
            let _ = parse(&text, now, &tz);
            let _ = find(&text, now, &tz);
        }

        #[test]
        fn instants_never_panic(text in prop_oneof!["[0-9T:.Z+-]{0,30}", any::<String>()]) {
            let _ = parse_instant(&text, &TimeZone::UTC);
        }
    }
}
