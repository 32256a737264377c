//! Typed decoding of a resource's `spec`, with the field path of every problem.
//!
//! `serde_path_to_error` names the field of a type error; `serde_ignored` reports every field the
//! typed structs do not declare. Fields Istio has but mesh does not implement *are* declared (as
//! [`NotImplemented`]) so they are not unknown; the translators warn about them by path.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diag::Reporter;

/// An Istio field mesh reads but does not implement: kept only to warn about it.
pub(crate) type NotImplemented = Option<Value>;

fn ignored_path(path: &serde_ignored::Path<'_>, out: &mut String) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            ignored_path(parent, out);
            out.push_str(&format!("[{index}]"));
        }
        Path::Map { parent, key } => {
            ignored_path(parent, out);
            out.push('.');
            out.push_str(key);
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent, out),
    }
}

fn error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::from("spec");
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Decodes `spec` into `T`. Unknown fields and type errors are reported as errors; `None` when
/// the spec could not be decoded at all (after an unknown field the value is still returned, so
/// its other problems are reported too).
pub(crate) fn decode_spec<T: DeserializeOwned>(
    spec: Value,
    report: &mut Reporter<'_>,
) -> Option<T> {
    let spec = if spec.is_null() {
        Value::Object(Default::default())
    } else {
        spec
    };
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let mut field = String::from("spec");
        ignored_path(&path, &mut field);
        unknown.push(field);
    };
    // Path tracking allocates for every key, so it runs only to explain a failure.
    let result = T::deserialize(serde_ignored::Deserializer::new(&spec, &mut on_ignored));
    for field in &unknown {
        report.error(field, "unknown field");
    }
    match result {
        // With unknown fields the load fails anyway; keep validating to report everything.
        Ok(v) => Some(v),
        Err(plain) => {
            let mut ignore = |_: serde_ignored::Path<'_>| {};
            let de = serde_ignored::Deserializer::new(&spec, &mut ignore);
            match serde_path_to_error::deserialize::<_, T>(de) {
                Err(e) => report.error(&error_path(e.path()), e.inner().to_string()),
                // Not expected: the same input failed above; report it without a path.
                Ok(_) => report.error("spec", plain.to_string()),
            }
            None
        }
    }
}
