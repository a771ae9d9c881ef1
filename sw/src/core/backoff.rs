//! When to try again. Pure: the attempt count, the jitter draw and the
//! origin's `Retry-After` come in as arguments.

use super::config::Config;

/// Longest wait a `Retry-After` may impose (1 hour): an origin asking for
/// more is treated as asking for this.
pub const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// The delay before retry number `retry` (1-based), or `None` once
/// `max_retries` retries have been spent (the entry is then dead-lettered).
///
/// `jitter` is a draw in `[0, 1)`; the delay is spread over ±20 % of the
/// schedule's value so that many clients that failed together do not
/// retry together. A `Retry-After` longer than that wins.
pub fn delay_ms(config: &Config, retry: u32, jitter: f64, retry_after_ms: Option<u64>) -> Option<u64> {
    if retry == 0 || retry > config.max_retries {
        return None;
    }
    let schedule = &config.backoff_ms;
    let base = u64::from(schedule[(retry as usize - 1).min(schedule.len() - 1)]);
    let spread = super::clock::spread(base, jitter);
    Some(match retry_after_ms {
        Some(ra) => spread.max(ra.min(MAX_RETRY_AFTER_MS)),
        None => spread,
    })
}

/// Parses `Retry-After` (delay-seconds or an HTTP date) into milliseconds
/// from `now_ms`. An unparseable or past value means "no opinion".
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim_ascii();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = parse_http_date(value)?;
    at.checked_sub(now_ms).filter(|d| *d > 0)
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP/1.1
/// senders must use, to Unix milliseconds.
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = super::text::after(s, ", ")?;
    let mut parts = super::text::split(rest, b' ');
    let day: u64 = parts.next()?.parse().ok()?;
    // One search in the twelve names (a `match` of twelve strings was 0.3 KB).
    let name = parts.next().filter(|m| m.len() == 3)?;
    let at = super::text::find("JanFebMarAprMayJunJulAugSepOctNovDec", name).filter(|i| i % 3 == 0)?;
    let month = at as i64 / 3 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = super::text::split(parts.next()?, b':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    if days < 0 {
        return None;
    }
    Some(((days as u64 * 86_400) + h * 3600 + m * 60 + sec) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_2_4_8_16_32_then_dead() {
        let c = Config::default();
        let mid: Vec<_> = (1..=5).map(|r| delay_ms(&c, r, 0.5, None).unwrap()).collect();
        assert_eq!(mid, [2_000, 4_000, 8_000, 16_000, 32_000]);
        assert_eq!(delay_ms(&c, 6, 0.5, None), None);
        assert_eq!(delay_ms(&c, 0, 0.5, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let c = Config::default();
        assert_eq!(delay_ms(&c, 1, 0.0, None), Some(1_600));
        assert_eq!(delay_ms(&c, 1, 0.999_999, None), Some(2_400));
        assert_eq!(delay_ms(&c, 5, 0.0, None), Some(25_600));
        // Out-of-range draws are clamped, not trusted.
        assert_eq!(delay_ms(&c, 1, 7.0, None), Some(2_400));
        assert_eq!(delay_ms(&c, 1, -1.0, None), Some(1_600));
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        let c = Config::default();
        assert_eq!(delay_ms(&c, 1, 0.5, Some(10_000)), Some(10_000));
        assert_eq!(delay_ms(&c, 1, 0.5, Some(100)), Some(2_000));
        assert_eq!(delay_ms(&c, 1, 0.5, Some(u64::MAX)), Some(MAX_RETRY_AFTER_MS));
    }

    #[test]
    fn last_delay_repeats_when_retries_outnumber_the_schedule() {
        let c = Config::from_json(r#"{"backoffMs": [1000, 3000], "maxRetries": 4}"#).unwrap();
        let d: Vec<_> = (1..=5).map(|r| delay_ms(&c, r, 0.5, None)).collect();
        assert_eq!(d, [Some(1_000), Some(3_000), Some(3_000), Some(3_000), None]);
    }

    #[test]
    fn retry_after_forms() {
        let now = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(10_000));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), None);
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), None);
        for junk in [
            "",
            "soon",
            "-5",
            "1.5",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 anF 1994 08:49:37 GMT",
            "Sun, 06 No 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn every_month_by_its_name() {
        // The first of each month of 2001, in days since 1970 (2001 is not a leap year).
        let starts = [11_323, 11_354, 11_382, 11_413, 11_443, 11_474, 11_504, 11_535, 11_566, 11_596, 11_627, 11_657];
        let names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        for (name, days) in names.iter().zip(starts) {
            let date = format!("Mon, 01 {name} 2001 00:00:00 GMT");
            assert_eq!(parse_http_date(&date), Some(days * 86_400_000), "{date}");
        }
    }
}
