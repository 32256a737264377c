//! The generated gRPC code of `proto/shop.proto`.
#![allow(missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("shop");
