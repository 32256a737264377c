//! What a route does: forward to weighted destinations, redirect, or answer directly; and the
//! header operations of routes and destinations.

use super::super::super::diag::{Field, Reporter};
use super::super::super::names;
use super::super::super::resources as r;
use super::super::traffic_policy::port_number;
use super::{ActionSpec, DestSpec, WeightedDest};
use crate::BuildContext;
use crate::model::HeaderMutation;

fn mutation(ops: Option<&r::HeaderOperations>) -> HeaderMutation {
    let Some(ops) = ops else {
        return HeaderMutation::default();
    };
    HeaderMutation {
        set: ops
            .set
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        add: ops
            .add
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        remove: ops.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
    }
}

pub(super) fn headers(
    h: Option<&r::Headers>,
    field: &Field,
    report: &mut Reporter<'_>,
) -> (HeaderMutation, HeaderMutation) {
    let Some(h) = h else {
        return Default::default();
    };
    let req = mutation(h.request.as_ref());
    let resp = mutation(h.response.as_ref());
    for (m, name) in [(&req, "request"), (&resp, "response")] {
        for (k, _) in m.set.iter().chain(&m.add) {
            if k.is_empty() || k.starts_with(':') || http_name_invalid(k) {
                report.error(&field.key(name), format!("invalid header name {k:?}"));
            }
        }
    }
    (req, resp)
}

fn http_name_invalid(name: &str) -> bool {
    !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    let mut out = Vec::new();
    let mut total: i64 = 0;
    let mut ok = true;
    for (i, d) in dests.iter().enumerate() {
        let df = f.key("route").index(i);
        let weight = match d.weight {
            None if dests.len() == 1 => 100,
            None => {
                report.error(
                    &df.key("weight"),
                    "weight is required when a route has several destinations",
                );
                ok = false;
                0
            }
            Some(w @ 0..=100) => w,
            Some(w) => {
                report.error(&df.key("weight"), format!("weight {w} is outside 0..100"));
                ok = false;
                0
            }
        };
        total += weight;
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
            // In 0..=100 from the match above.
            weight: weight as u32,
            request_headers,
            response_headers,
        });
    }
    if ok && total != 100 {
        let field = if dests.len() == 1 {
            f.key("route").index(0).key("weight")
        } else {
            f.key("route")
        };
        report.error(&field, format!("weights sum to {total}, expected 100"));
        return None;
    }
    ok.then_some(ActionSpec::Forward(out))
}
