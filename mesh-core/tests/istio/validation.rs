//! Istio's own validation documents (istio/istio `pkg/config/validation/testdata/crds`, copied
//! under `tests/fixtures/istio-validation`, see its NOTICE) get Istio's verdict from mesh:
//! every document of a `*-valid.yaml` file is accepted, every document of a `*-invalid.yaml`
//! file is refused, and kinds mesh does not read are skipped with a warning, never an error.
//! The rule is Istio's `openapi_test.go` `TestCRDs`: the file name gives the verdict and the
//! `_err` key (removed before loading, as `validateWebhook` removes it) the reason.

use std::path::Path;

use mesh_core::istio;

use super::*;

const DIR: &str = "istio-validation";

/// Documents where mesh's verdict differs from Istio's, with why. Each must still differ:
/// the test fails when one is fixed, so the list stays true.
const KNOWN: &[(&str, &str)] = &[
    (
        "serviceentry-valid.yaml#0 ServiceEntry/full",
        "`addresses: [1.2.3.4, 001:db8::]`: in YAML 1.2 a `:` before `]` in a flow sequence \
     makes `001:db8::` a one-pair map (mesh's parser follows the spec); Go's yaml reads a string",
    ),
    (
        "authz-valid.yaml#0 AuthorizationPolicy/full",
        "JWT `requestPrincipals`, `request.auth.*` keys, path templates and `experimental.envoy.*` \
     keys: mesh cannot enforce them, and in an AuthorizationPolicy anything mesh cannot \
     enforce is an error that fails the rule closed (issue #11), never accepted silently",
    ),
];

/// The documents of `content`, split on `---` lines, without Istio's `_err` key; blank and
/// comment-only documents are left out.
fn documents(content: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in content.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if !line.starts_with("_err:") {
            let doc = docs.last_mut().expect("one document");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn name_of(doc: &str) -> String {
    let kind = doc
        .lines()
        .find_map(|l| l.strip_prefix("kind:"))
        .unwrap_or_default()
        .trim();
    let name = doc
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("name:"))
        .unwrap_or_default()
        .trim();
    format!("{kind}/{name}")
}

#[test]
fn istios_validation_documents_get_istios_verdict() {
    let dir = Path::new(FIXTURES).join(DIR);
    let files = istio::collect_files(&[&dir]).expect("fixtures");
    assert_eq!(files.len(), 22, "{files:?}");
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for file in &files {
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let valid = !file_name.ends_with("-invalid.yaml");
        let content = std::fs::read_to_string(file).expect("read fixture");
        for (i, doc) in documents(&content).iter().enumerate() {
            checked += 1;
            let label = format!("{file_name}#{i} {}", name_of(doc));
            let verdict = istio::load_str(&label, doc, &ctx());
            let skipped = |w: &[mesh_core::config::Diagnostic]| {
                w.iter()
                    .any(|d| d.message.ends_with("is not read by mesh; skipped"))
            };
            let agrees = match &verdict {
                // A kind mesh does not read: skipped with a warning whatever Istio says.
                Ok(s) if skipped(&s.warnings) => true,
                Ok(_) => valid,
                Err(_) => !valid,
            };
            if !agrees {
                let detail = match &verdict {
                    Ok(_) => "accepted".to_owned(),
                    Err(e) => e.to_string(),
                };
                disagreements.push((label, detail));
            }
        }
    }
    assert!(checked > 100, "{checked}");
    let unexpected: Vec<_> = disagreements
        .iter()
        .filter(|(label, _)| !KNOWN.iter().any(|(k, _)| label == k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "mesh disagrees with Istio on {unexpected:#?}"
    );
    for (known, why) in KNOWN {
        assert!(
            disagreements.iter().any(|(label, _)| label == known),
            "{known} ({why}) now agrees with Istio: remove it from KNOWN"
        );
    }
}
