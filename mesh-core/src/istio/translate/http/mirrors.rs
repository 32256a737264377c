//! Traffic mirroring: `mirror` with `mirrorPercentage` (or the legacy `mirrorPercent`), and
//! the `mirrors` list.

use super::super::super::diag::{Field, Reporter};
use super::super::super::resources as r;
use super::MirrorSpec;
use super::action::destination;
use super::faults::percentage;
use crate::BuildContext;

pub(super) fn mirrors(
    route: &r::HttpRoute,
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Vec<MirrorSpec> {
    let mut out = Vec::new();
    if route.mirror.is_some() && route.mirrors.is_some() {
        report.error(
            &f.key("mirrors"),
            "mirror and mirrors are mutually exclusive",
        );
        return out;
    }
    if let Some(m) = &route.mirror {
        let percentage = percentage(
            &route.mirror_percentage,
            route.mirror_percent.map(i64::from),
            f,
            ("mirrorPercentage", "mirrorPercent"),
            report,
        );
        if let (Some(dest), Some(percentage)) = (
            destination(&Some(m.clone()), &f.key("mirror"), namespace, ctx, report),
            percentage,
        ) {
            out.push(MirrorSpec { dest, percentage });
        }
    } else if route.mirror_percentage.is_some() || route.mirror_percent.is_some() {
        report.warn(&f.key("mirrorPercentage"), "no mirror is set; ignored");
    }
    for (i, m) in route.mirrors.iter().flatten().enumerate() {
        let mf = f.key("mirrors").index(i);
        let percentage = percentage(&m.percentage, None, &mf, ("percentage", ""), report);
        if let (Some(dest), Some(percentage)) = (
            destination(
                &m.destination,
                &mf.key("destination"),
                namespace,
                ctx,
                report,
            ),
            percentage,
        ) {
            out.push(MirrorSpec { dest, percentage });
        }
    }
    out
}
