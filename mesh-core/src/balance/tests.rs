//! Cross-algorithm tests of the balancer.
