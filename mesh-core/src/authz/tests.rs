//! Table tests for [`evaluate`] following Istio's documented rules, and the path-bypass vectors.

use super::*;
use crate::model::{
    AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, ConditionKey,
    IpBlock, StringPattern,
};

const SLEEP: &str = "cluster.local/ns/foo/sa/sleep";
const HEADERS: &[(&str, &str)] = &[("X-Env", "dev"), ("x-env", "canary"), ("x-token", "abc")];

fn mtls() -> AuthzRequest<'static> {
    AuthzRequest {
        source_principal: Some(SLEEP),
        source_namespace: namespace_of(SLEEP),
        source_ip: Some("10.0.0.5".parse().unwrap()),
        destination_ip: Some("10.0.1.1".parse().unwrap()),
        destination_port: Some(8000),
        authority: "httpbin.foo:8000",
        method: "GET",
        path: "/get",
        sni: Some("outbound_.8000_._.httpbin.foo.svc.cluster.local"),
        headers: &HEADERS,
    }
}

fn plaintext() -> AuthzRequest<'static> {
    AuthzRequest {
        source_principal: None,
        source_namespace: None,
        sni: None,
        ..mtls()
    }
}

fn pats(v: &[&str]) -> Vec<StringPattern> {
    v.iter().map(|s| StringPattern::parse(s)).collect()
}

fn policy(name: &str, action: AuthzAction, rules: Vec<AuthzRule>) -> AuthzPolicy {
    AuthzPolicy {
        name: name.to_owned(),
        action,
        rules,
    }
}

fn allow(name: &str, rules: Vec<AuthzRule>) -> AuthzPolicy {
    policy(name, AuthzAction::Allow, rules)
}

fn deny(name: &str, rules: Vec<AuthzRule>) -> AuthzPolicy {
    policy(name, AuthzAction::Deny, rules)
}

fn from(source: AuthzSource) -> AuthzRule {
    AuthzRule {
        from: vec![source],
        ..AuthzRule::default()
    }
}

fn to(op: AuthzOperation) -> AuthzRule {
    AuthzRule {
        to: vec![op],
        ..AuthzRule::default()
    }
}

fn when(key: ConditionKey, values: &[&str], not_values: &[&str]) -> AuthzRule {
    AuthzRule {
        when: vec![AuthzCondition {
            key,
            values: pats(values),
            not_values: pats(not_values),
        }],
        ..AuthzRule::default()
    }
}

fn principals(v: &[&str]) -> AuthzRule {
    from(AuthzSource {
        principals: pats(v),
        ..AuthzSource::default()
    })
}

fn not_principals(v: &[&str]) -> AuthzRule {
    from(AuthzSource {
        not_principals: pats(v),
        ..AuthzSource::default()
    })
}

fn paths(v: &[&str]) -> AuthzRule {
    to(AuthzOperation {
        paths: pats(v),
        ..AuthzOperation::default()
    })
}

/// Whether an ALLOW policy holding just `rule` lets `req` through.
fn allows(rule: AuthzRule, req: &AuthzRequest<'_>) -> bool {
    let policies = [allow("ns/p", vec![rule])];
    evaluate(&policies, req).is_allowed()
}

/// Whether a DENY policy holding just `rule` refuses `req`.
fn denies(rule: AuthzRule, req: &AuthzRequest<'_>) -> bool {
    let policies = [deny("ns/p", vec![rule])];
    !evaluate(&policies, req).is_allowed()
}

#[test]
fn evaluation_order() {
    let req = mtls();
    let get = || {
        to(AuthzOperation {
            methods: pats(&["GET"]),
            ..AuthzOperation::default()
        })
    };
    let post = || {
        to(AuthzOperation {
            methods: pats(&["POST"]),
            ..AuthzOperation::default()
        })
    };
    type Case = (
        &'static str,
        Vec<AuthzPolicy>,
        Reason,
        Option<(&'static str, usize)>,
    );
    let cases: Vec<Case> = vec![
        ("no policies", vec![], Reason::NoAllowPolicy, None),
        (
            "unmatched DENY only",
            vec![deny("ns/d", vec![post()])],
            Reason::NoAllowPolicy,
            None,
        ),
        (
            "DENY before ALLOW",
            vec![
                allow("ns/a", vec![get()]),
                deny("ns/d", vec![post(), get()]),
            ],
            Reason::DenyMatched,
            Some(("ns/d", 1)),
        ),
        (
            "ALLOW matched",
            vec![
                allow("ns/a", vec![post(), get()]),
                deny("ns/d", vec![post()]),
            ],
            Reason::AllowMatched,
            Some(("ns/a", 1)),
        ),
        (
            "ALLOW present, unmatched",
            vec![allow("ns/a", vec![post()])],
            Reason::NoAllowMatched,
            None,
        ),
        (
            "second ALLOW matches",
            vec![allow("ns/a", vec![post()]), allow("ns/b", vec![get()])],
            Reason::AllowMatched,
            Some(("ns/b", 0)),
        ),
        (
            "ALLOW with no rules matches nothing",
            vec![allow("ns/a", vec![])],
            Reason::NoAllowMatched,
            None,
        ),
        (
            "ALLOW rule {} matches everything",
            vec![allow("ns/a", vec![AuthzRule::default()])],
            Reason::AllowMatched,
            Some(("ns/a", 0)),
        ),
        (
            "DENY rule {} denies everything",
            vec![
                allow("ns/a", vec![AuthzRule::default()]),
                deny("ns/d", vec![AuthzRule::default()]),
            ],
            Reason::DenyMatched,
            Some(("ns/d", 0)),
        ),
        (
            "DENY with no rules matches nothing",
            vec![deny("ns/d", vec![])],
            Reason::NoAllowPolicy,
            None,
        ),
        (
            "AUDIT alone does not create default-deny",
            vec![policy("ns/audit", AuthzAction::Audit, vec![post()])],
            Reason::NoAllowPolicy,
            None,
        ),
    ];
    for (name, policies, reason, rule) in cases {
        let d = evaluate(&policies, &req);
        assert_eq!(d.reason, reason, "{name}");
        let got = d.rule.map(|r| (r.policy, r.rule));
        assert_eq!(got, rule, "{name}");
        assert_eq!(d.is_allowed(), reason.verdict() == Verdict::Allow, "{name}");
    }
}

#[test]
fn audit_marks_but_never_decides() {
    let req = mtls();
    let policies = [
        policy(
            "ns/audit-all",
            AuthzAction::Audit,
            vec![AuthzRule::default()],
        ),
        policy("ns/audit-post", AuthzAction::Audit, vec![paths(&["/nope"])]),
        policy("ns/audit-get", AuthzAction::Audit, vec![paths(&["/get"])]),
        deny("ns/d", vec![paths(&["/get"])]),
    ];
    let d = evaluate(&policies, &req);
    assert_eq!(d.reason, Reason::DenyMatched);
    assert_eq!(d.audit, vec!["ns/audit-all", "ns/audit-get"]);
    assert!(d.should_audit());

    let d = evaluate(&policies[..3], &req);
    assert!(d.is_allowed());
    assert_eq!(d.audit.len(), 2);
    assert_eq!(d.to_string(), "no ALLOW policy applies");

    let d = evaluate(&[], &req);
    assert!(!d.should_audit());
    assert_eq!(d.audit.capacity(), 0, "fast path must not allocate");
}

#[test]
fn principals_and_plaintext() {
    let (m, p) = (mtls(), plaintext());
    // `principals: ["*"]` means "any authenticated peer": it requires mTLS.
    assert!(allows(principals(&["*"]), &m));
    assert!(!allows(principals(&["*"]), &p));
    assert!(allows(principals(&[SLEEP]), &m));
    assert!(allows(principals(&["other", "cluster.local/ns/foo/*"]), &m));
    assert!(allows(principals(&["*/sa/sleep"]), &m));
    assert!(!allows(principals(&["cluster.local/ns/bar/*"]), &m));
    assert!(!allows(principals(&["cluster.local/ns/foo/sa/sleep/"]), &m));
    // A plaintext peer has no principal, so it matches every notPrincipals.
    assert!(denies(not_principals(&["*"]), &p));
    assert!(!denies(not_principals(&["*"]), &m));
    assert!(allows(not_principals(&[SLEEP]), &p));
    assert!(!allows(not_principals(&[SLEEP]), &m));
    assert!(allows(not_principals(&["cluster.local/ns/bar/*"]), &m));

    let ns = |v: &[&str], n: &[&str]| {
        from(AuthzSource {
            namespaces: pats(v),
            not_namespaces: pats(n),
            ..AuthzSource::default()
        })
    };
    assert!(allows(ns(&["foo"], &[]), &m));
    assert!(allows(ns(&["f*"], &[]), &m));
    assert!(!allows(ns(&["*"], &[]), &p));
    assert!(!allows(ns(&["bar"], &[]), &m));
    assert!(!allows(ns(&[], &["foo"]), &m));
    assert!(allows(ns(&[], &["foo"]), &p));
    assert!(!allows(ns(&["*"], &["foo"]), &m));
}

#[test]
fn source_fields_all_must_hold_and_any_source_may() {
    let m = mtls();
    let both = |ns: &str, block: &str| AuthzSource {
        principals: pats(&[SLEEP]),
        namespaces: pats(&[ns]),
        ip_blocks: vec![IpBlock::parse(block).unwrap()],
        ..AuthzSource::default()
    };
    assert!(allows(from(both("foo", "10.0.0.0/24")), &m));
    assert!(!allows(from(both("bar", "10.0.0.0/24")), &m));
    assert!(!allows(from(both("foo", "10.9.0.0/16")), &m));
    let either = AuthzRule {
        from: vec![both("bar", "10.0.0.0/24"), both("foo", "10.0.0.5")],
        ..AuthzRule::default()
    };
    assert!(allows(either, &m));
}

#[test]
fn ip_blocks() {
    let m = mtls();
    let blocks = |v: &[&str], n: &[&str]| {
        from(AuthzSource {
            ip_blocks: v.iter().map(|s| IpBlock::parse(s).unwrap()).collect(),
            not_ip_blocks: n.iter().map(|s| IpBlock::parse(s).unwrap()).collect(),
            ..AuthzSource::default()
        })
    };
    assert!(allows(blocks(&["10.0.0.0/8"], &[]), &m));
    assert!(allows(blocks(&["192.168.0.0/16", "10.0.0.5"], &[]), &m));
    assert!(!allows(blocks(&["10.0.0.6"], &[]), &m));
    assert!(!allows(blocks(&["10.0.0.0/8"], &["10.0.0.0/29"]), &m));
    assert!(allows(blocks(&[], &["192.168.0.0/16"]), &m));
    // Unknown source address: fails closed both ways.
    let unknown = AuthzRequest {
        source_ip: None,
        ..m
    };
    assert!(!allows(blocks(&["0.0.0.0/0"], &[]), &unknown));
    assert!(!allows(blocks(&[], &["192.168.0.0/16"]), &unknown));
    assert!(denies(blocks(&["192.168.0.0/16"], &[]), &unknown));
    assert!(denies(blocks(&[], &["0.0.0.0/0"]), &unknown));
}

#[test]
fn operations() {
    let m = mtls();
    let op = |f: fn(&mut AuthzOperation)| {
        let mut o = AuthzOperation::default();
        f(&mut o);
        to(o)
    };
    assert!(allows(op(|o| o.methods = pats(&["GET", "HEAD"])), &m));
    assert!(!allows(op(|o| o.methods = pats(&["get"])), &m));
    assert!(!allows(op(|o| o.not_methods = pats(&["GET"])), &m));
    assert!(allows(op(|o| o.not_methods = pats(&["POST"])), &m));
    assert!(allows(op(|o| o.ports = vec![9000, 8000]), &m));
    assert!(!allows(op(|o| o.ports = vec![9000]), &m));
    assert!(!allows(op(|o| o.not_ports = vec![8000]), &m));
    assert!(allows(op(|o| o.not_ports = vec![9000]), &m));
    assert!(allows(op(|o| o.paths = pats(&["/get"])), &m));
    assert!(allows(op(|o| o.paths = pats(&["/g*"])), &m));
    assert!(allows(op(|o| o.paths = pats(&["*et"])), &m));
    assert!(!allows(op(|o| o.paths = pats(&["/GET"])), &m));
    assert!(!allows(op(|o| o.not_paths = pats(&["/get"])), &m));
    assert!(allows(op(|o| o.not_paths = pats(&["/admin*"])), &m));
    assert!(!allows(
        op(|o| {
            o.paths = pats(&["/get"]);
            o.methods = pats(&["POST"]);
        }),
        &m
    ));
    let unknown_port = AuthzRequest {
        destination_port: None,
        ..m
    };
    assert!(!allows(op(|o| o.ports = vec![8000]), &unknown_port));
    assert!(denies(op(|o| o.not_ports = vec![8000]), &unknown_port));
}

#[test]
fn hosts() {
    let host = |v: &[&str], n: &[&str]| {
        to(AuthzOperation {
            hosts: pats(v),
            not_hosts: pats(n),
            ..AuthzOperation::default()
        })
    };
    let at = |authority: &'static str| AuthzRequest {
        authority,
        ..mtls()
    };
    let cases: &[(&[&str], &[&str], &str, bool)] = &[
        (&["httpbin.foo"], &[], "httpbin.foo:8000", true),
        (&["httpbin.foo"], &[], "HTTPBIN.Foo", true),
        (&["HTTPBIN.FOO"], &[], "httpbin.foo", true),
        (&["httpbin.foo:8000"], &[], "httpbin.foo:8000", true),
        (&["httpbin.foo:8000"], &[], "httpbin.foo", false),
        (&["httpbin.foo:9000"], &[], "httpbin.foo:8000", false),
        (
            &["*.foo.svc.cluster.local"],
            &[],
            "httpbin.foo.svc.cluster.local:80",
            true,
        ),
        (
            &["*.FOO.svc.cluster.local"],
            &[],
            "httpbin.foo.svc.cluster.local",
            true,
        ),
        (&["httpbin.*"], &[], "Httpbin.foo:8000", true),
        (&["httpbin.bar"], &[], "httpbin.foo", false),
        (&["[::1]"], &[], "[::1]:8000", true),
        (&[], &["httpbin.foo"], "httpbin.foo:8000", false),
        (&[], &["HTTPBIN.FOO"], "httpbin.foo", false),
        (&[], &["other"], "httpbin.foo:8000", true),
        (&["*"], &[], "x", true),
        (&["*"], &[], "", false),
        (&[], &["*"], "", true),
    ];
    for &(v, n, authority, want) in cases {
        assert_eq!(
            allows(host(v, n), &at(authority)),
            want,
            "hosts {v:?} notHosts {n:?} at {authority}"
        );
    }
}

#[test]
fn when_conditions() {
    use ConditionKey::*;
    let (m, p) = (mtls(), plaintext());
    let header = |n: &str| RequestHeader(n.to_owned());
    // Any value of a repeated header may match; names are case-insensitive.
    assert!(allows(when(header("x-env"), &["canary"], &[]), &m));
    assert!(allows(when(header("X-ENV"), &["de*"], &[]), &m));
    assert!(allows(when(header("x-env"), &["*"], &[]), &m));
    assert!(!allows(when(header("x-missing"), &["*"], &[]), &m));
    assert!(allows(when(header("x-missing"), &[], &["*"]), &m));
    assert!(!allows(when(header("x-env"), &[], &["canary"]), &m));
    assert!(!allows(when(header("x-env"), &["prod"], &[]), &m));
    assert!(!allows(when(header("x-token"), &["*"], &["abc"]), &m));

    assert!(allows(when(SourceIp, &["10.0.0.0/16"], &[]), &m));
    assert!(!allows(when(SourceIp, &["10.0.0.0/16"], &["10.0.0.5"]), &m));
    assert!(!allows(when(SourceIp, &["192.168.0.0/16"], &[]), &m));
    assert!(allows(when(DestinationIp, &["10.0.1.1/32"], &[]), &m));
    assert!(!allows(when(DestinationIp, &[], &["10.0.1.0/24"]), &m));

    assert!(allows(when(SourcePrincipal, &[SLEEP], &[]), &m));
    assert!(!allows(when(SourcePrincipal, &["*"], &[]), &p));
    assert!(allows(when(SourcePrincipal, &[], &["*"]), &p));
    assert!(allows(when(SourceNamespace, &["foo"], &[]), &m));
    assert!(!allows(when(SourceNamespace, &["foo"], &[]), &p));
    assert!(allows(when(DestinationPort, &["80", "8000"], &[]), &m));
    assert!(!allows(when(DestinationPort, &[], &["8000"]), &m));
    assert!(allows(
        when(ConnectionSni, &["*.httpbin.foo.svc.cluster.local"], &[]),
        &m
    ));
    assert!(!allows(when(ConnectionSni, &["*"], &[]), &p));

    // Every `when` entry must hold.
    let mut both = when(header("x-env"), &["dev"], &[]);
    both.when.extend(when(DestinationPort, &["9000"], &[]).when);
    assert!(!allows(both, &m));
}

#[test]
fn unsupported_fails_closed() {
    use ConditionKey::*;
    let m = mtls();
    let jwt = from(AuthzSource {
        request_principals: pats(&["*"]),
        ..AuthzSource::default()
    });
    let not_jwt = from(AuthzSource {
        not_request_principals: pats(&["*"]),
        ..AuthzSource::default()
    });
    let claim = when(Unsupported("request.auth.claims[iss]".into()), &["x"], &[]);
    for rule in [jwt, not_jwt, claim] {
        assert!(!allows(rule.clone(), &m), "{rule:?} must not allow");
        assert!(denies(rule.clone(), &m), "{rule:?} must deny");
    }
    // Values mesh cannot read: a port that is not a number, an IP that is not a block.
    for rule in [
        when(DestinationPort, &["80*"], &[]),
        when(SourceIp, &["not-an-ip"], &[]),
        when(SourceIp, &[], &["10.0.0.0/33"]),
    ] {
        assert!(!allows(rule.clone(), &m), "{rule:?} must not allow");
        assert!(denies(rule.clone(), &m), "{rule:?} must deny");
    }
    // In a DENY rule the unsupported part counts as matched, the rest still has to match.
    let mut scoped = paths(&["/admin"]);
    scoped.from = vec![AuthzSource {
        request_principals: pats(&["*"]),
        ..AuthzSource::default()
    }];
    assert!(!denies(scoped, &m));
}

/// DENY `/admin` (and below), ALLOW `/public/*`: the bypass vectors of CVE-2021-31920 and friends.
#[test]
fn path_bypass_vectors() {
    let policies = [
        deny("ns/deny-admin", vec![paths(&["/admin", "/admin/*"])]),
        allow("ns/allow-public", vec![paths(&["/public/*"])]),
    ];
    let decide = |raw: &str| -> Result<Reason, PathError> {
        let n = normalize_path(raw)?;
        let req = AuthzRequest {
            path: n.path(),
            ..mtls()
        };
        Ok(evaluate(&policies, &req).reason)
    };
    use Reason::*;
    let cases: &[(&str, Result<Reason, PathError>)] = &[
        ("/admin", Ok(DenyMatched)),
        ("//admin", Ok(DenyMatched)),
        ("/%2Fadmin", Ok(DenyMatched)),
        ("/%2fadmin", Ok(DenyMatched)),
        ("/%5Cadmin", Ok(DenyMatched)),
        ("/%5cadmin", Ok(DenyMatched)),
        ("/./admin", Ok(DenyMatched)),
        ("/a/../admin", Ok(DenyMatched)),
        ("/public/../admin", Ok(DenyMatched)),
        ("/public/%2e%2e/admin", Ok(DenyMatched)),
        ("/public%2f..%2fadmin", Ok(DenyMatched)),
        ("/public/..%5cadmin", Ok(DenyMatched)),
        ("/admin/", Ok(DenyMatched)),
        ("/admin/./users", Ok(DenyMatched)),
        ("/%61dmin", Ok(DenyMatched)),
        ("/admin?x=1", Ok(DenyMatched)),
        ("/admin#frag", Err(PathError::Fragment(6))),
        ("/admin%00", Err(PathError::EncodedControl(6))),
        ("/admin%2", Err(PathError::InvalidPercentEncoding(6))),
        // Paths are case-sensitive in Istio: `/ADMIN` is not `/admin`. Here the ALLOW policy's
        // default-deny still refuses it; see `case_sensitivity_is_the_policy_authors_job`.
        ("/ADMIN", Ok(NoAllowMatched)),
        ("/public/index.html", Ok(AllowMatched)),
        ("//public//index.html", Ok(AllowMatched)),
        ("/public/%69ndex", Ok(AllowMatched)),
        ("/public", Ok(NoAllowMatched)),
        ("/other", Ok(NoAllowMatched)),
    ];
    for (raw, want) in cases {
        assert_eq!(&decide(raw), want, "request path {raw:?}");
    }
}

/// With only a DENY on `/admin`, `/ADMIN` passes: Istio compares paths case-sensitively, so an
/// application that treats paths case-insensitively needs both forms in the policy.
#[test]
fn case_sensitivity_is_the_policy_authors_job() {
    let policies = [deny("ns/deny-admin", vec![paths(&["/admin"])])];
    let at = |path| AuthzRequest { path, ..mtls() };
    assert!(!evaluate(&policies, &at("/admin")).is_allowed());
    assert!(evaluate(&policies, &at("/ADMIN")).is_allowed());
    let both = [deny("ns/deny-admin", vec![paths(&["/admin", "/ADMIN"])])];
    assert!(!evaluate(&both, &at("/ADMIN")).is_allowed());
}
