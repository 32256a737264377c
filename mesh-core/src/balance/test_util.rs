//! Statistical helpers for the balancing tests.

/// Asserts that `count` successes out of `n` draws fit probability `p` within 5 standard
/// deviations of the binomial.
pub(crate) fn assert_within_5_sigma(count: u32, n: u32, p: f64) {
    let n = f64::from(n);
    let expected = n * p;
    let sigma = (n * p * (1.0 - p)).sqrt();
    let diff = (f64::from(count) - expected).abs();
    assert!(
        diff <= 5.0 * sigma.max(1.0),
        "count {count} of {n} draws, expected {expected:.1} ± 5×{sigma:.2}"
    );
}
