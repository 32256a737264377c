//! The order istiod gives resources of one kind: oldest `metadata.creationTimestamp` first,
//! then by name, then by namespace (`configCompareByCreationTime`, pilot/pkg/model/config.go).
//!
//! It decides which of two VirtualServices for one host wins and which DestinationRule's
//! traffic policy a merge keeps. A resource without a timestamp (a file never applied to a
//! cluster) has Go's zero time, so it sorts before any stamped one; among unstamped resources
//! the name decides, as in istiod.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::diag::Diagnostics;
use super::Item;

/// Seconds and nanoseconds since the Unix epoch; `None` sorts first (Go's zero time).
pub(crate) type Stamp = Option<(i64, u32)>;

/// Parses an RFC 3339 timestamp as Kubernetes writes it (`2024-05-01T10:00:00Z`, optional
/// fraction, `Z` or `±hh:mm`) into seconds and nanoseconds since the Unix epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Option<(i64, u32)> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some((time.unix_timestamp(), time.nanosecond()))
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
