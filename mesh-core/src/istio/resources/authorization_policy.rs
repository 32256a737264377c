//! AuthorizationPolicy.

use serde::Deserialize;

use super::WorkloadSelector;
use crate::istio::decode::NotImplemented;

/// `spec` of an AuthorizationPolicy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthorizationPolicySpec {
    pub(crate) selector: Option<WorkloadSelector>,
    pub(crate) target_ref: NotImplemented,
    pub(crate) target_refs: NotImplemented,
    pub(crate) rules: Option<Vec<Rule>>,
    pub(crate) action: Option<AuthzActionSetting>,
    pub(crate) provider: NotImplemented,
}

/// `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum AuthzActionSetting {
    Allow,
    Deny,
    Audit,
    Custom,
}

/// `rules[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Rule {
    #[serde(default)]
    pub(crate) from: Vec<RuleFrom>,
    #[serde(default)]
    pub(crate) to: Vec<RuleTo>,
    #[serde(default)]
    pub(crate) when: Vec<Condition>,
}

/// `from[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RuleFrom {
    pub(crate) source: Option<Source>,
}

/// `from[].source`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Source {
    #[serde(default)]
    pub(crate) principals: Vec<String>,
    #[serde(default)]
    pub(crate) not_principals: Vec<String>,
    #[serde(default)]
    pub(crate) request_principals: Vec<String>,
    #[serde(default)]
    pub(crate) not_request_principals: Vec<String>,
    #[serde(default)]
    pub(crate) namespaces: Vec<String>,
    #[serde(default)]
    pub(crate) not_namespaces: Vec<String>,
    #[serde(default)]
    pub(crate) ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) not_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) not_remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub(crate) service_accounts: Vec<String>,
    #[serde(default)]
    pub(crate) not_service_accounts: Vec<String>,
    #[serde(default)]
    pub(crate) trust_domains: Vec<String>,
    #[serde(default)]
    pub(crate) not_trust_domains: Vec<String>,
}

impl Source {
    /// Whether no field is set (istiod refuses an empty `source`).
    pub(crate) fn is_empty(&self) -> bool {
        [
            &self.principals,
            &self.not_principals,
            &self.request_principals,
            &self.not_request_principals,
            &self.namespaces,
            &self.not_namespaces,
            &self.ip_blocks,
            &self.not_ip_blocks,
            &self.remote_ip_blocks,
            &self.not_remote_ip_blocks,
            &self.service_accounts,
            &self.not_service_accounts,
            &self.trust_domains,
            &self.not_trust_domains,
        ]
        .iter()
        .all(|v| v.is_empty())
    }
}

/// `to[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RuleTo {
    pub(crate) operation: Option<Operation>,
}

/// `to[].operation`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Operation {
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    #[serde(default)]
    pub(crate) not_hosts: Vec<String>,
    #[serde(default)]
    pub(crate) ports: Vec<String>,
    #[serde(default)]
    pub(crate) not_ports: Vec<String>,
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    #[serde(default)]
    pub(crate) not_methods: Vec<String>,
    #[serde(default)]
    pub(crate) paths: Vec<String>,
    #[serde(default)]
    pub(crate) not_paths: Vec<String>,
}

impl Operation {
    /// Whether no field is set (istiod refuses an empty `operation`).
    pub(crate) fn is_empty(&self) -> bool {
        [
            &self.hosts,
            &self.not_hosts,
            &self.ports,
            &self.not_ports,
            &self.methods,
            &self.not_methods,
            &self.paths,
            &self.not_paths,
        ]
        .iter()
        .all(|v| v.is_empty())
    }
}

/// `when[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition {
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) values: Vec<String>,
    #[serde(default)]
    pub(crate) not_values: Vec<String>,
}
