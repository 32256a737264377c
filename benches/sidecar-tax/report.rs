//! Results: per-repetition measurements, medians, the Markdown table, the targets, and JSON.

use serde::Serialize;

/// One arm's measurements in one repetition.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Open loop: latency percentiles from intended start, µs.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p90_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// Open loop: calls that failed or timed out.
    pub failed: u64,
    /// Open loop: median dispatch lateness of the scheduler, µs (same for every arm).
    pub sched_lateness_p50_us: f64,
    /// Open loop: CPU µs per request of the client process and the client-side proxy.
    pub cpu_client_us: f64,
    /// Open loop: CPU µs per request of the server process and the server-side proxy.
    pub cpu_server_us: f64,
    /// Open loop: CPU µs per request, every process of the arm.
    pub cpu_total_us: f64,
    /// Closed loop: requests per second.
    pub peak_rps: f64,
    /// Closed loop: CPU µs per request, every process of the arm.
    pub peak_cpu_total_us: f64,
    /// Closed loop: p50 latency, µs.
    pub peak_p50_us: f64,
    /// Peak RSS (VmHWM) of the server process, MiB.
    pub server_rss_mib: f64,
    /// Peak RSS (VmHWM) of the proxies, summed, MiB.
    pub proxies_rss_mib: f64,
}

impl Sample {
    /// Server-side memory: the server and every proxy of the arm.
    pub fn memory_mib(&self) -> f64 {
        self.server_rss_mib + self.proxies_rss_mib
    }
}

/// One arm's results over all repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct ArmResult {
    /// Short name (`A`, `A′`, `B`, `C`).
    pub arm: String,
    /// What it is.
    pub description: String,
    /// Each repetition, in order.
    pub repetitions: Vec<Sample>,
    /// The median of each field over the repetitions.
    pub median: Sample,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The field-wise median of `samples`.
pub fn median_sample(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Sample {
        p50_us: m(|s| s.p50_us),
        p90_us: m(|s| s.p90_us),
        p99_us: m(|s| s.p99_us),
        failed: samples.iter().map(|s| s.failed).sum(),
        sched_lateness_p50_us: m(|s| s.sched_lateness_p50_us),
        cpu_client_us: m(|s| s.cpu_client_us),
        cpu_server_us: m(|s| s.cpu_server_us),
        cpu_total_us: m(|s| s.cpu_total_us),
        peak_rps: m(|s| s.peak_rps),
        peak_cpu_total_us: m(|s| s.peak_cpu_total_us),
        peak_p50_us: m(|s| s.peak_p50_us),
        server_rss_mib: m(|s| s.server_rss_mib),
        proxies_rss_mib: m(|s| s.proxies_rss_mib),
    }
}

/// A target and whether the run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The goal.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// The targets, B against A′ (and B-http against A′-http) and B against C, from the
/// medians. Added latency and CPU
/// are over arm A (no mesh at all), as Istio measures its sidecars.
pub fn targets(arms: &[ArmResult]) -> Vec<Target> {
    let get = |name: &str| arms.iter().find(|a| a.arm == name).map(|a| &a.median);
    let mut out = Vec::new();
    let mut push = |name: &str, goal: &str, measured: String, met: bool| {
        out.push(Target {
            name: name.to_owned(),
            goal: goal.to_owned(),
            measured,
            met,
        });
    };
    for (mesh, bare) in [("B", "A′"), ("B-http", "A′-http")] {
        if let (Some(b), Some(t)) = (get(mesh), get(bare)) {
            pair_targets(&mut push, &format!("{mesh} − {bare}"), b, t);
            let rps = b.peak_rps / t.peak_rps;
            push(
                &format!("{mesh} / {bare} peak rps"),
                "≥ 0.9×",
                format!("{rps:.2}×"),
                rps >= 0.9,
            );
        }
    }
    if let (Some(a), Some(b), Some(c)) = (get("A"), get("B"), get("C")) {
        for (label, f) in [
            ("p50", (|s: &Sample| s.p50_us) as fn(&Sample) -> f64),
            ("p90", |s: &Sample| s.p90_us),
            ("p99", |s: &Sample| s.p99_us),
        ] {
            let (added_b, added_c) = (f(b) - f(a), f(c) - f(a));
            let ratio = added_c / added_b.max(1.0);
            push(
                &format!("C / B added {label} latency (over A)"),
                "≥ 10×",
                format!("{ratio:.1}× ({added_c:+.0} vs {added_b:+.0} µs)"),
                ratio >= 10.0,
            );
        }
        let (added_b, added_c) = (
            b.cpu_total_us - a.cpu_total_us,
            c.cpu_total_us - a.cpu_total_us,
        );
        let ratio = added_c / added_b.max(0.1);
        push(
            "C / B added CPU per request (over A)",
            "≥ 10×",
            format!("{ratio:.1}× ({added_c:+.1} vs {added_b:+.1} µs)"),
            ratio >= 10.0,
        );
        let saved = c.memory_mib() - b.memory_mib();
        push(
            "C − B memory (server + proxies)",
            "≥ 50 MiB",
            format!("{saved:.1} MiB"),
            saved >= 50.0,
        );
    }
    out
}

/// The targets of mesh arm `b` against its bare arm `t`, named `label` (`B − A′`): CPU per
/// request on each side at 1,000 rps and both sides at the closed-loop peak, p50 and p99.
fn pair_targets(
    push: &mut impl FnMut(&str, &str, String, bool),
    label: &str,
    b: &Sample,
    t: &Sample,
) {
    let client = b.cpu_client_us - t.cpu_client_us;
    let server = b.cpu_server_us - t.cpu_server_us;
    push(
        &format!("{label} CPU per request, client side"),
        "≤ +5 µs",
        format!("{client:+.1} µs"),
        client <= 5.0,
    );
    push(
        &format!("{label} CPU per request, server side"),
        "≤ +5 µs",
        format!("{server:+.1} µs"),
        server <= 5.0,
    );
    let peak = b.peak_cpu_total_us - t.peak_cpu_total_us;
    push(
        &format!("{label} CPU per request at peak, both sides"),
        "≤ +5 µs",
        format!("{peak:+.1} µs"),
        peak <= 5.0,
    );
    let p50 = b.p50_us - t.p50_us;
    push(
        &format!("{label} p50"),
        "≤ +20 µs",
        format!("{p50:+.0} µs"),
        p50 <= 20.0,
    );
    let p99 = b.p99_us - t.p99_us;
    push(
        &format!("{label} p99"),
        "≤ +50 µs",
        format!("{p99:+.0} µs"),
        p99 <= 50.0,
    );
}

/// The bare arm whose figures an arm's `÷A′` columns divide by: A′-http for the plain-HTTP
/// arms, A′ for the others.
fn bare_of(arm: &str) -> &'static str {
    if arm.ends_with("-http") {
        "A′-http"
    } else {
        "A′"
    }
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}×", x / b),
        _ => "–".to_owned(),
    }
}

/// The Markdown table of medians, then the targets.
pub fn markdown(arms: &[ArmResult], targets: &[Target]) -> String {
    use std::fmt::Write as _;
    let base = |name: &str| {
        arms.iter()
            .find(|a| a.arm == name)
            .map(|a| a.median.clone())
    };
    let c = base("C");
    let mut out = String::new();
    out.push_str(
        "| arm | p50 µs | p90 µs | p99 µs | CPU µs/req client | CPU µs/req server | CPU µs/req total | CPU µs/req at peak | server RSS MiB | proxies RSS MiB | peak rps | p50 ÷A′ | CPU ÷A′ | rps ÷A′ | p50 ÷C | CPU ÷C | memory ÷C |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for arm in arms {
        let s = &arm.median;
        let tls = base(bare_of(&arm.arm));
        let _ = writeln!(
            out,
            "| {} {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} |",
            arm.arm,
            arm.description,
            s.p50_us,
            s.p90_us,
            s.p99_us,
            s.cpu_client_us,
            s.cpu_server_us,
            s.cpu_total_us,
            s.peak_cpu_total_us,
            s.server_rss_mib,
            s.proxies_rss_mib,
            s.peak_rps,
            ratio(s.p50_us, tls.as_ref().map(|t| t.p50_us)),
            ratio(s.cpu_total_us, tls.as_ref().map(|t| t.cpu_total_us)),
            ratio(s.peak_rps, tls.as_ref().map(|t| t.peak_rps)),
            ratio(s.p50_us, c.as_ref().map(|t| t.p50_us)),
            ratio(s.cpu_total_us, c.as_ref().map(|t| t.cpu_total_us)),
            ratio(s.memory_mib(), c.as_ref().map(Sample::memory_mib)),
        );
    }
    if arms.iter().any(|a| a.arm.ends_with("-http")) {
        out.push_str("\nThe plain-HTTP arms' ÷A′ columns are ÷A′-http.\n");
    }
    if !targets.is_empty() {
        out.push_str("\n| target | goal | measured | |\n| --- | --- | --- | --- |\n");
        for t in targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name,
                t.goal,
                t.measured,
                if t.met { "met" } else { "**missed**" }
            );
        }
    }
    out
}
