//! Cross-module tests of the balancer, seeded and without sockets.

mod distribution;
mod hashing;
mod health;
mod locality;
mod props;
mod swap;
