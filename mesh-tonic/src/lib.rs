//! mesh-tonic
#![forbid(unsafe_code)]
