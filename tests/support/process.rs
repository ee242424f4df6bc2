//! Process-wide knobs for the tests that run in a process of their own: resource
//! limits, the notifier in use, and child processes of the test binary with a
//! bounded wait.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Sets the soft limit of `resource` (`libc::RLIMIT_*`) to `value`, keeping
/// the hard limit (raised to `value` if lower: the tests run as root, or
/// only lower it). Returns the soft limit it replaced.
///
/// # Panics
///
/// If `getrlimit` or `setrlimit` fails.
pub fn set_soft_limit(resource: libc::__rlimit_resource_t, value: u64) -> u64 {
    // SAFETY: all-zero is a valid `rlimit` for `getrlimit` to fill.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is valid for writes.
    assert_eq!(
        unsafe { libc::getrlimit(resource, &mut lim) },
        0,
        "getrlimit({resource}): {}",
        std::io::Error::last_os_error()
    );
    let old = lim.rlim_cur;
    lim.rlim_cur = value;
    if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < value {
        lim.rlim_max = value;
    }
    // SAFETY: `lim` is a valid `rlimit`.
    assert_eq!(
        unsafe { libc::setrlimit(resource, &lim) },
        0,
        "setrlimit({resource}, {value}): {}",
        std::io::Error::last_os_error()
    );
    old
}

/// Whether `AIOFS_NOTIFIER` asks for the signal notifier (CI's second run).
pub fn signal_notifier_from_env() -> bool {
    std::env::var("AIOFS_NOTIFIER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("signal"))
}

/// What a child process did.
#[derive(Debug)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs this test binary again with `args` and the environment `env` added,
/// waiting at most `timeout`; a child still running then is killed and the
/// result is `Err` with its output so far.
///
/// # Panics
///
/// If the child cannot be started.
pub fn run_self(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<ChildOutput, String> {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start the child process");
    // Read the pipes on threads so that a chatty child never blocks on them.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = started + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(ChildOutput {
            status,
            stdout,
            stderr,
            elapsed,
        }),
        None => Err(format!(
            "the child process did not finish within {timeout:?} and was killed:\n\
             --- stdout\n{stdout}\n--- stderr\n{stderr}"
        )),
    }
}

/// As [`super::in_child`], with `env` added to the child's environment:
/// `true` in the child (the caller runs the test's body), `false` in the
/// parent once the child passed.
///
/// # Panics
///
/// In the parent, with the child's output, if the child failed, did not run
/// the test, or ran longer than 120 s.
pub fn in_child_env(name: &str, env: &[(&str, &str)]) -> bool {
    const CHILD: &str = "AIOFS_TEST_CHILD";
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let mut all = vec![(CHILD, name)];
    all.extend_from_slice(env);
    let out = run_self(
        &["--exact", name, "--test-threads=1", "--nocapture"],
        &all,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed in its child process ({}):\n{}\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("1 passed"),
        "the child process did not run {name}:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    false
}
