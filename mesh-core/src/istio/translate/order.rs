//! The order istiod gives resources of one kind: oldest `metadata.creationTimestamp` first,
//! then by name, then by namespace (`configCompareByCreationTime`, pilot/pkg/model/config.go).
//!
//! It decides which of two VirtualServices for one host wins and which DestinationRule's
//! traffic policy a merge keeps. A resource without a timestamp (a file never applied to a
//! cluster) has Go's zero time, so it sorts before any stamped one; among unstamped resources
//! the name decides, as in istiod.

use super::super::diag::Diagnostics;
use super::Item;

/// Seconds and nanoseconds since the Unix epoch; `None` sorts first (Go's zero time).
pub(crate) type Stamp = Option<(i64, u32)>;

/// Parses an RFC 3339 timestamp as Kubernetes writes it (`2024-05-01T10:00:00Z`, optional
/// fraction, `Z` or `±hh:mm`).
pub(crate) fn parse_rfc3339(text: &str) -> Option<(i64, u32)> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = text.get(from..to)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = frac[..digits].parse::<u32>().ok()? * 10u32.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The creation stamp of `item`; a malformed one is an error at `metadata.creationTimestamp`.
pub(crate) fn stamp<T>(item: &Item<T>, diags: &mut Diagnostics) -> Stamp {
    let text = item.metadata.creation_timestamp.as_deref()?;
    let parsed = parse_rfc3339(text);
    if parsed.is_none() {
        diags.at(&item.origin, &item.resource).error(
            "metadata.creationTimestamp",
            format!("{text:?} is not an RFC 3339 time (e.g. 2024-05-01T10:00:00Z)"),
        );
    }
    parsed
}

/// `items` in istiod's order (see the module docs).
pub(crate) fn by_creation<'a, T: 'a>(
    items: impl IntoIterator<Item = &'a Item<T>>,
    diags: &mut Diagnostics,
) -> Vec<&'a Item<T>> {
    let mut keyed: Vec<(Stamp, &Item<T>)> = items
        .into_iter()
        .map(|item| (stamp(item, diags), item))
        .collect();
    keyed.sort_by(|(a, x), (b, y)| {
        a.cmp(b)
            .then_with(|| x.resource.name.cmp(&y.resource.name))
            .then_with(|| x.resource.namespace.cmp(&y.resource.namespace))
    });
    keyed.into_iter().map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2024-05-01T10:00:00Z"),
            Some((1_714_557_600, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.5+02:00"),
            Some((1_714_557_600, 500_000_000))
        );
        assert_eq!(parse_rfc3339("2024-05-01"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday at noon!!"), None);
    }
}
