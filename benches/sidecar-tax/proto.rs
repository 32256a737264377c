//! The `helloworld.Greeter` client and server generated from `proto/helloworld.proto`.
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

tonic::include_proto!("helloworld");
