//! What a route does: forward to weighted destinations, redirect, or answer directly; and the
//! header operations of routes and destinations.

use super::super::super::diag::{Field, Reporter};
use super::super::super::names;
use super::super::super::resources as r;
use super::super::traffic_policy::port_number;
use super::{ActionSpec, DestSpec, WeightedDest};
use crate::BuildContext;
use crate::model::HeaderMutation;

/// Header operations, names lowercased; invalid names and values (which could not be sent) are
/// errors at `field.set.<name>` / `field.add.<name>` / `field.remove[i]`.
fn mutation(
    ops: Option<&r::HeaderOperations>,
    field: &Field,
    report: &mut Reporter<'_>,
) -> HeaderMutation {
    let Some(ops) = ops else {
        return HeaderMutation::default();
    };
    let mut pairs = |map: &std::collections::BTreeMap<String, String>, op: &str| {
        let mut out = Vec::with_capacity(map.len());
        for (name, value) in map {
            let f = field.key(op).key(name);
            if !valid_name(name) {
                report.error(&f, format!("invalid header name {name:?}"));
            } else if !valid_value(value) {
                report.error(&f, format!("invalid header value {value:?}"));
            } else {
                out.push((name.to_ascii_lowercase(), value.clone()));
            }
        }
        out
    };
    let set = pairs(&ops.set, "set");
    let add = pairs(&ops.add, "add");
    let mut remove = Vec::with_capacity(ops.remove.len());
    for (i, name) in ops.remove.iter().enumerate() {
        if valid_name(name) {
            remove.push(name.to_ascii_lowercase());
        } else {
            report.error(
                &field.key("remove").index(i),
                format!("invalid header name {name:?}"),
            );
        }
    }
    HeaderMutation { set, add, remove }
}

/// `headers`: (request, response) operations.
pub(super) fn headers(
    h: Option<&r::Headers>,
    field: &Field,
    report: &mut Reporter<'_>,
) -> (HeaderMutation, HeaderMutation) {
    let Some(h) = h else {
        return Default::default();
    };
    (
        mutation(h.request.as_ref(), &field.key("request"), report),
        mutation(h.response.as_ref(), &field.key("response"), report),
    )
}

/// An HTTP token (RFC 9110), so no pseudo-headers.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible characters, spaces and tabs (RFC 9110 field values; no CR, LF or NUL).
fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

pub(super) fn destination(
    d: &Option<r::Destination>,
    field: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<DestSpec> {
    let Some(d) = d else {
        report.error(field, "destination is required");
        return None;
    };
    let host = match d.host.as_deref() {
        None | Some("") => {
            report.error(&field.key("host"), "host is required");
            return None;
        }
        Some(h) => {
            if let Err(e) = names::validate_host(h) {
                report.error(&field.key("host"), e);
                return None;
            }
            if h.contains('*') {
                report.error(
                    &field.key("host"),
                    "a destination host must not be a wildcard",
                );
                return None;
            }
            names::resolve_host(h, namespace, &ctx.settings)
        }
    };
    let port = match &d.port {
        Some(p) => Some(port_number(
            p.number,
            &field.key("port").key("number"),
            report,
        )?),
        None => None,
    };
    Some(DestSpec {
        host,
        subset: d.subset.clone().filter(|s| !s.is_empty()),
        port,
        field: field.clone(),
    })
}

pub(super) fn action(
    route: &r::HttpRoute,
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ActionSpec> {
    let given = [
        route.route.is_some(),
        route.redirect.is_some(),
        route.direct_response.is_some(),
    ];
    match given {
        [false, false, false] => {
            report.error(f, "one of route, redirect, directResponse is required");
            None
        }
        [true, false, false] => forward(
            route.route.as_deref().unwrap_or_default(),
            f,
            namespace,
            ctx,
            report,
        ),
        [false, true, false] => {
            let rd = route.redirect.as_ref()?;
            let rf = f.key("redirect");
            report.unimplemented(&rd.port, &rf.key("port"));
            report.unimplemented(&rd.derive_port, &rf.key("derivePort"));
            report.unimplemented(&rd.scheme, &rf.key("scheme"));
            let status = match rd.redirect_code {
                None | Some(0) => 301,
                Some(c @ (301 | 302 | 303 | 307 | 308)) => c as u16,
                Some(c) => {
                    report.error(
                        &rf.key("redirectCode"),
                        format!("{c} is not a redirect status (301, 302, 303, 307, 308)"),
                    );
                    return None;
                }
            };
            Some(ActionSpec::Redirect {
                path: rd.uri.clone(),
                authority: rd.authority.clone(),
                status,
            })
        }
        [false, false, true] => {
            let dr = route.direct_response.as_ref()?;
            let df = f.key("directResponse");
            let status = match dr.status {
                Some(s @ 200..=599) => s as u16,
                Some(s) => {
                    report.error(&df.key("status"), format!("status {s} is outside 200..599"));
                    return None;
                }
                None => {
                    report.error(&df.key("status"), "status is required");
                    return None;
                }
            };
            if let Some(b) = &dr.body {
                report.unimplemented(&b.bytes, &df.key("body").key("bytes"));
            }
            Some(ActionSpec::Direct {
                status,
                body: dr.body.as_ref().and_then(|b| b.string.clone()),
            })
        }
        _ => {
            report.error(
                f,
                "route, redirect and directResponse are mutually exclusive",
            );
            None
        }
    }
}

fn forward(
    dests: &[r::HttpRouteDestination],
    f: &Field,
    namespace: &str,
    ctx: &BuildContext,
    report: &mut Reporter<'_>,
) -> Option<ActionSpec> {
    if dests.is_empty() {
        report.error(&f.key("route"), "at least one destination is required");
        return None;
    }
    // Weights are relative (pkg/config/validation validateHTTPRouteDestinations and
    // validateWeight: each >= 0, an error only when several destinations total 0); one
    // destination takes all traffic whatever its weight, and among several a 0 weight is never
    // picked (pilot/pkg/networking/core/route applyHTTPRouteDestination leaves it out of the
    // weighted clusters; mesh keeps it at weight 0, which the pick never lands on).
    let single = dests.len() == 1;
    let mut out = Vec::new();
    let mut total: u64 = 0;
    let mut ok = true;
    for (i, d) in dests.iter().enumerate() {
        let df = f.key("route").index(i);
        let weight = match d.weight {
            None => 0,
            Some(w) if w < 0 => {
                report.error(&df.key("weight"), format!("weight {w} < 0"));
                ok = false;
                0
            }
            Some(w) => match i32::try_from(w) {
                Ok(w) => w.unsigned_abs(),
                Err(_) => {
                    report.error(
                        &df.key("weight"),
                        format!("weight {w} is out of range (at most {})", i32::MAX),
                    );
                    ok = false;
                    0
                }
            },
        };
        total += u64::from(weight);
        let (request_headers, response_headers) =
            headers(d.headers.as_ref(), &df.key("headers"), report);
        let Some(dest) = destination(
            &d.destination,
            &df.key("destination"),
            namespace,
            ctx,
            report,
        ) else {
            ok = false;
            continue;
        };
        out.push(WeightedDest {
            dest,
            weight: if single { 100 } else { weight },
            request_headers,
            response_headers,
        });
    }
    if ok && !single && total == 0 {
        report.error(&f.key("route"), "total destination weight = 0");
        return None;
    }
    ok.then_some(ActionSpec::Forward(out))
}
