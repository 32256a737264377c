//! The fuzzing loop: generate an input, run it, catch what panics, count what happened.
//!
//! A [`Target`] turns a seeded RNG into one input (bytes, so any input can be saved and run
//! again) and runs an input through the code under test. The driver runs each input under
//! [`std::panic::catch_unwind`] with a panic hook that records the panic's message and location
//! in a thread-local instead of printing it. Targets that serve over sockets run their server on a
//! current-thread tokio runtime, so a panic in a server task (which tokio catches) happens on
//! this thread too and is recorded the same way. A target can also report a broken invariant
//! (`Err`), which counts as a crash.
//!
//! Crashes are grouped by where they happened (panic location, or the invariant's message); the
//! first input of each group is written to the crash directory, with its message beside it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

/// One kind of untrusted input and the code that reads it.
pub trait Target {
    /// The name the driver's command line uses.
    fn name(&self) -> &'static str;
    /// The next input, drawn from `rng`.
    fn generate(&mut self, rng: &mut StdRng) -> Vec<u8>;
    /// Runs `input` through the code under test: `Ok` names the outcome (for the statistics),
    /// `Err` is a broken invariant.
    fn execute(&mut self, input: &[u8]) -> Result<&'static str, String>;
    /// A check run after every batch of inputs (e.g. "the server still answers"); `Err` counts
    /// as a crash of the batch's last input.
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// How long and from where to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Inputs to run.
    pub runs: u64,
    /// Seed of the input generator: the same seed gives the same inputs.
    pub seed: u64,
    /// Stop early after this long.
    pub max_time: Option<Duration>,
    /// Where crashing inputs are written (`None`: kept in memory only).
    pub crash_dir: Option<PathBuf>,
    /// Inputs between two [`Target::check`] calls.
    pub check_every: u64,
}

impl RunConfig {
    /// `runs` inputs from `seed`, no time bound, nothing written.
    pub fn new(runs: u64, seed: u64) -> Self {
        Self {
            runs,
            seed,
            max_time: None,
            crash_dir: None,
            check_every: 100,
        }
    }
}

/// One group of crashes: same panic location or same broken invariant.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The panic message with its location, or the invariant's message.
    pub message: String,
    /// How many inputs crashed here.
    pub count: u64,
    /// The first input that did.
    pub input: Vec<u8>,
    /// Where that input was saved, if it was.
    pub saved: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The target's name.
    pub target: &'static str,
    /// Inputs run.
    pub runs: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Inputs per outcome name.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Crash groups, by key.
    pub crashes: BTreeMap<String, Crash>,
    /// The slowest input's time.
    pub slowest: Duration,
}

impl Report {
    /// Inputs that crashed.
    pub fn crash_count(&self) -> u64 {
        self.crashes.values().map(|c| c.count).sum()
    }

    /// A few lines for a terminal or a log.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mut s = format!(
            "{}: {} inputs in {:.1} s ({:.0}/s), slowest {:.1} ms, {} crash(es) in {} group(s)\n",
            self.target,
            self.runs,
            secs,
            self.runs as f64 / secs.max(1e-9),
            self.slowest.as_secs_f64() * 1e3,
            self.crash_count(),
            self.crashes.len()
        );
        for (name, n) in &self.outcomes {
            let _ = writeln!(s, "  {name}: {n}");
        }
        for crash in self.crashes.values() {
            let _ = writeln!(
                s,
                "  CRASH x{}: {}{}",
                crash.count,
                crash.message,
                crash
                    .saved
                    .as_ref()
                    .map(|p| format!(" (input: {})", p.display()))
                    .unwrap_or_default()
            );
        }
        s
    }
}

thread_local! {
    /// Set while this thread runs fuzz inputs: panics are recorded, not printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CAPTURING.with(Cell::get) {
                PANICS.with(|p| p.borrow_mut().push(describe(info)));
            } else {
                previous(info);
            }
        }));
    });
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".to_owned());
    match info.location() {
        Some(l) => format!(
            "panicked at {}:{}:{}: {message}",
            l.file(),
            l.line(),
            l.column()
        ),
        None => format!("panicked: {message}"),
    }
}

/// Captures panics on this thread while alive.
struct Capture;

impl Capture {
    fn start() -> Self {
        install_hook();
        CAPTURING.with(|c| c.set(true));
        PANICS.with(|p| p.borrow_mut().clear());
        Capture
    }

    fn take(&self) -> Vec<String> {
        PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.with(|c| c.set(false));
    }
}

/// Runs `input` once: `Ok(outcome)` or `Err(crash message)`.
pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<&'static str, String> {
    let capture = Capture::start();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| target.execute(input)));
    first_failure(&capture, result)
}

fn first_failure(
    capture: &Capture,
    result: std::thread::Result<Result<&'static str, String>>,
) -> Result<&'static str, String> {
    let panics = capture.take();
    if let Some(first) = panics.into_iter().next() {
        return Err(first);
    }
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(invariant)) => Err(format!("invariant: {invariant}")),
        Err(_) => Err("panicked (message not captured)".to_owned()),
    }
}

/// The key crashes are grouped by: the panic location (file:line:col), else the message.
fn crash_key(message: &str) -> String {
    message
        .strip_prefix("panicked at ")
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or(message)
        .to_owned()
}

/// Runs `config.runs` inputs of `target`.
pub fn run(target: &mut dyn Target, config: &RunConfig) -> Report {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut report = Report {
        target: target.name(),
        ..Report::default()
    };
    let start = Instant::now();
    let check_every = config.check_every.max(1);
    for i in 0..config.runs {
        if config.max_time.is_some_and(|max| start.elapsed() >= max) {
            break;
        }
        let input = target.generate(&mut rng);
        let t = Instant::now();
        let mut result = run_one(target, &input);
        report.slowest = report.slowest.max(t.elapsed());
        if (i + 1) % check_every == 0 {
            let capture = Capture::start();
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| target.check()));
            let checked = first_failure(&capture, checked.map(|r| r.map(|()| "checked")));
            if let (Ok(_), Err(e)) = (&result, checked) {
                result = Err(format!("after this input: {e}"));
            }
        }
        report.runs += 1;
        match result {
            Ok(outcome) => *report.outcomes.entry(outcome).or_default() += 1,
            Err(message) => record_crash(&mut report, config, message, input),
        }
    }
    report.elapsed = start.elapsed();
    report
}

fn record_crash(report: &mut Report, config: &RunConfig, message: String, input: Vec<u8>) {
    let key = crash_key(&message);
    if let Some(crash) = report.crashes.get_mut(&key) {
        crash.count += 1;
        return;
    }
    let saved = config
        .crash_dir
        .as_deref()
        .and_then(|dir| save_crash(dir, report.target, &message, &input));
    report.crashes.insert(
        key,
        Crash {
            message,
            count: 1,
            input,
            saved,
        },
    );
}

/// Writes `input` as `<dir>/<target>-<hash>.bin` and the message beside it (`.txt`).
fn save_crash(dir: &Path, target: &str, message: &str, input: &[u8]) -> Option<PathBuf> {
    let hash = xxhash(input);
    let path = dir.join(format!("{target}-{hash:016x}.bin"));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, input))
        .and_then(|()| std::fs::write(path.with_extension("txt"), message));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("cannot save crash to {}: {e}", path.display());
            None
        }
    }
}

/// FNV-1a: a stable name for a saved input.
fn xxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Shrinks a crashing `input` while it still crashes at the same place: removes chunks of
/// lines, then chunks of bytes, halving the chunk size until nothing more can go.
pub fn minimize(target: &mut dyn Target, input: &[u8]) -> Option<Vec<u8>> {
    let key = crash_key(&run_one(target, input).err()?);
    let mut still = |candidate: &[u8]| {
        run_one(target, candidate)
            .err()
            .is_some_and(|m| crash_key(&m) == key)
    };
    let mut best = input.to_vec();
    // Lines first (YAML and PEM are line-structured), then bytes.
    for by_lines in [true, false] {
        let mut units = split_units(&best, by_lines);
        let mut chunk = units.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < units.len() {
                let mut candidate = units.clone();
                candidate.drain(i..(i + chunk).min(units.len()));
                let bytes = candidate.concat();
                if still(&bytes) {
                    units = candidate;
                    best = bytes;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    Some(best)
}

fn split_units(bytes: &[u8], by_lines: bool) -> Vec<Vec<u8>> {
    if by_lines {
        bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    } else {
        bytes.iter().map(|b| vec![*b]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on inputs starting with `!`, breaks an invariant on `?`.
    struct Picky;

    impl Target for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        fn generate(&mut self, rng: &mut StdRng) -> Vec<u8> {
            use rand::Rng;
            vec![rng.random_range(b'!'..=b'$'), b'x', b'y']
        }
        fn execute(&mut self, input: &[u8]) -> Result<&'static str, String> {
            match input.first() {
                Some(b'!') => panic!("bang"),
                Some(b'?') => Err("question".into()),
                _ => Ok("fine"),
            }
        }
    }

    #[test]
    fn panics_and_invariants_are_crashes_grouped_by_place() {
        let report = run(&mut Picky, &RunConfig::new(400, 1));
        assert_eq!(report.runs, 400);
        assert_eq!(report.crashes.len(), 1, "{}", report.summary());
        let crash = report.crashes.values().next().expect("one group");
        assert!(crash.message.contains("bang"), "{}", crash.message);
        assert!(crash.message.contains("driver.rs"), "{}", crash.message);
        assert_eq!(crash.count + report.outcomes["fine"], 400);
        assert!(crash.count > 50 && report.outcomes["fine"] > 200);

        assert_eq!(run_one(&mut Picky, b"?"), Err("invariant: question".into()));
    }

    #[test]
    fn minimize_keeps_the_crash_and_drops_the_rest() {
        let min = minimize(&mut Picky, b"!abc\ndef\n").expect("crashes");
        assert_eq!(min, b"!");
        assert_eq!(minimize(&mut Picky, b"fine"), None);
    }
}
