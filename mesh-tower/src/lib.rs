//! mesh-tower
#![forbid(unsafe_code)]
