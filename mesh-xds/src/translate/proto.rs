//! Small conversions between protobuf well-known types and std types, Envoy's socket address,
//! and the detection of fields we read past without implementing.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    Address, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::google::protobuf::{self as pb, value::Kind};
use prost::{Message, Name};

/// Envoy's socket address of `address` (an IP or a host name) and `port`.
pub(crate) fn socket(address: impl Into<String>, port: u16) -> address::Address {
    address::Address::SocketAddress(SocketAddress {
        address: address.into(),
        port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
        ..Default::default()
    })
}

/// [`socket`] as an `Address`.
pub(crate) fn socket_address(address: impl Into<String>, port: u16) -> Address {
    Address {
        address: Some(socket(address, port)),
    }
}

/// A protobuf duration as a std duration; `None` for negative or out-of-range values.
pub(crate) fn duration_from(d: &pb::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

/// A std duration as a protobuf duration (saturating at `i64::MAX` seconds).
pub(crate) fn duration_to(d: Duration) -> pb::Duration {
    pb::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `Some(UInt32Value)`.
pub(crate) fn u32v(v: u32) -> Option<pb::UInt32Value> {
    Some(pb::UInt32Value { value: v })
}

/// `Some(UInt64Value)`.
pub(crate) fn u64v(v: u64) -> Option<pb::UInt64Value> {
    Some(pb::UInt64Value { value: v })
}

/// A string value.
pub(crate) fn string_value(s: impl Into<String>) -> pb::Value {
    pb::Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A number value.
pub(crate) fn number_value(n: f64) -> pb::Value {
    pb::Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// A bool value.
pub(crate) fn bool_value(b: bool) -> pb::Value {
    pb::Value {
        kind: Some(Kind::BoolValue(b)),
    }
}

/// A list value.
pub(crate) fn list_value(values: Vec<pb::Value>) -> pb::Value {
    pb::Value {
        kind: Some(Kind::ListValue(pb::ListValue { values })),
    }
}

/// A struct value.
pub(crate) fn struct_value(fields: HashMap<String, pb::Value>) -> pb::Value {
    pb::Value {
        kind: Some(Kind::StructValue(pb::Struct { fields })),
    }
}

/// The string in a value, if it is one.
pub(crate) fn as_str(v: &pb::Value) -> Option<&str> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// The number in a value, if it is one.
pub(crate) fn as_number(v: &pb::Value) -> Option<f64> {
    match &v.kind {
        Some(Kind::NumberValue(n)) => Some(*n),
        _ => None,
    }
}

/// The bool in a value, if it is one.
pub(crate) fn as_bool(v: &pb::Value) -> Option<bool> {
    match &v.kind {
        Some(Kind::BoolValue(b)) => Some(*b),
        _ => None,
    }
}

/// The list in a value, if it is one.
pub(crate) fn as_list(v: &pb::Value) -> Option<&[pb::Value]> {
    match &v.kind {
        Some(Kind::ListValue(l)) => Some(&l.values),
        _ => None,
    }
}

/// The struct in a value, if it is one.
pub(crate) fn as_struct(v: &pb::Value) -> Option<&pb::Struct> {
    match &v.kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

/// Packs a message into an `Any`.
pub(crate) fn pack<M: Message + Name>(m: &M) -> pb::Any {
    pb::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// Unpacks an `Any` of the expected type.
pub(crate) fn unpack<M: Message + Name + Default>(any: &pb::Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!(
            "expected {}, got {}",
            M::full_name(),
            any.type_url.trim_start_matches("type.googleapis.com/")
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode {}: {e}", M::full_name()))
}

/// The field numbers still set in `residual` once the fields we implement were cleared: the
/// fields a resource uses that mesh does not implement. Reads the encoding's top-level keys, so
/// every field is seen, known to us by name or not.
pub(crate) fn set_field_numbers<M: Message>(residual: &M) -> Vec<u32> {
    let bytes = residual.encode_to_vec();
    let mut tags = Vec::new();
    let mut buf = bytes.as_slice();
    while !buf.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut buf) else {
            break;
        };
        let tag = (key >> 3) as u32;
        let skip = match key & 7 {
            0 => prost::encoding::decode_varint(&mut buf).map(|_| 0).ok(),
            1 => Some(8),
            2 => prost::encoding::decode_varint(&mut buf)
                .ok()
                .and_then(|l| usize::try_from(l).ok()),
            5 => Some(4),
            _ => None,
        };
        let Some(skip) = skip.filter(|s| *s <= buf.len()) else {
            break;
        };
        buf = &buf[skip..];
        if tags.last() != Some(&tag) {
            tags.push(tag);
        }
    }
    tags.sort_unstable();
    tags.dedup();
    tags
}
