//! Cross-module tests of the balancer, seeded and without sockets.

mod control_plane;
mod distribution;
mod hashing;
mod health;
mod locality;
mod props;
mod slow_start;
mod swap;
