//! The outcome of evaluating a workload's policies against one request.

use std::fmt;

/// Allowed or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Pass the request to the application.
    Allow,
    /// Refuse it (HTTP 403, gRPC PERMISSION_DENIED).
    Deny,
}

/// Why the verdict is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No DENY policy matched and no ALLOW policy applies to the workload.
    NoAllowPolicy,
    /// A rule of an ALLOW policy matched.
    AllowMatched,
    /// A rule of a DENY policy matched.
    DenyMatched,
    /// ALLOW policies apply to the workload and none of their rules matched.
    NoAllowMatched,
}

impl Reason {
    /// The verdict this reason leads to.
    pub fn verdict(self) -> Verdict {
        match self {
            Reason::NoAllowPolicy | Reason::AllowMatched => Verdict::Allow,
            Reason::DenyMatched | Reason::NoAllowMatched => Verdict::Deny,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::NoAllowPolicy => "no ALLOW policy applies",
            Reason::AllowMatched => "ALLOW policy matched",
            Reason::DenyMatched => "DENY policy matched",
            Reason::NoAllowMatched => "no ALLOW policy matched",
        })
    }
}

/// The rule that decided: a policy name (`namespace/name`) and the index in its `rules`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef<'p> {
    /// The policy's `namespace/name`.
    pub policy: &'p str,
    /// Index into the policy's `rules`.
    pub rule: usize,
}

impl fmt::Display for RuleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rules[{}]", self.policy, self.rule)
    }
}

/// The decision for one request. Borrows names from the policies; the no-policy path allocates
/// nothing (`audit` stays an empty `Vec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Why.
    pub reason: Reason,
    /// The rule that decided (`DenyMatched`, `AllowMatched`); `None` otherwise.
    pub rule: Option<RuleRef<'p>>,
    /// AUDIT policies that matched: the request should be audited. Never changes the verdict.
    pub audit: Vec<&'p str>,
}

impl Decision<'_> {
    /// Allow or deny.
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }

    /// Whether the request may pass.
    pub fn is_allowed(&self) -> bool {
        self.verdict() == Verdict::Allow
    }

    /// Whether an AUDIT policy matched.
    pub fn should_audit(&self) -> bool {
        !self.audit.is_empty()
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Some(rule) => write!(f, "{}: {rule}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}
