//! Examples of mesh, one binary each.
#![forbid(unsafe_code)]
