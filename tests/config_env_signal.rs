//! `AIOFS_SIGNAL`: a bad value (not a number, not a signal, forbidden, reserved
//! by the C library) fails the first request, and every later one, with
//! `InvalidInput` naming the variable and the value, nothing submitted, the
//! buffer back; a good value is the signal the driver uses; an installed
//! `Config` wins over the variable.
//!
//! Process-wide state (environment, the driver): each test runs alone in a
//! child process of this binary (`in_child`). The notifier comes from
//! `AIOFS_NOTIFIER`, so CI runs these under both.

mod support;

use std::io::ErrorKind;

use support::in_child;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn set_signal_variable(value: &str) {
    // SAFETY: the child runs this test alone, and sets the variable before any
    // thread of its own reads the environment.
    unsafe { std::env::set_var("AIOFS_SIGNAL", value) };
}

/// Two requests under `AIOFS_SIGNAL=value`: both refused clearly.
fn refused(value: &str) {
    set_signal_variable(value);
    runtime().block_on(async {
        let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
        let (res, buf) = file.read_at(Vec::with_capacity(4), 0).await;
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("AIOFS_SIGNAL"), "{err}");
        assert!(
            err.to_string().contains(value),
            "the value is not named: {err}"
        );
        assert_eq!(buf.capacity(), 4, "the buffer comes back");
        // The driver did not start half-way: the same error again.
        let (res, buf) = file.write_at(b"x".to_vec(), 0).await;
        let again = res.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidInput);
        assert_eq!(again.to_string(), err.to_string());
        assert_eq!(buf, b"x");
    });
    assert_eq!(aiofs::stats().submitted, 0);
}

#[test]
fn bad_signal_variable_is_invalid_input_naming_it() {
    if in_child("bad_signal_variable_is_invalid_input_naming_it") {
        // SIGKILL: forbidden.
        refused("9");
    }
}

#[test]
fn signal_variable_that_is_not_a_number_is_refused() {
    if in_child("signal_variable_that_is_not_a_number_is_refused") {
        refused("SIGRTMIN+6");
    }
}

#[test]
fn signal_variable_past_sigrtmax_is_refused() {
    if in_child("signal_variable_past_sigrtmax_is_refused") {
        refused(&(libc::SIGRTMAX() + 1).to_string());
    }
}

#[test]
fn signal_variable_reserved_by_the_c_library_is_refused() {
    if in_child("signal_variable_reserved_by_the_c_library_is_refused") {
        refused(&(libc::SIGRTMIN() - 1).to_string());
    }
}

#[test]
fn signal_variable_zero_is_refused() {
    if in_child("signal_variable_zero_is_refused") {
        refused("0");
    }
}

#[test]
fn signal_variable_negative_is_refused() {
    if in_child("signal_variable_negative_is_refused") {
        refused("-5");
    }
}

/// The handler address of `signo`'s action (`SIG_DFL` is 0).
fn handler(signo: i32) -> usize {
    // SAFETY: `sigaction` with a null new action only reads into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signo, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Requests that complete, then: the driver's action is on `used`, and nothing
/// was installed on `unused`.
fn runs_on(used: i32, unused: i32) {
    assert_eq!(handler(used), libc::SIG_DFL);
    runtime().block_on(async {
        let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
        let (res, _) = file.write_all_at(b"signal".to_vec(), 0).await;
        res.expect("write_all_at");
        let (res, buf) = file.read_exact_at(Vec::with_capacity(6), 0).await;
        res.expect("read_exact_at");
        assert_eq!(buf, b"signal");
    });
    assert_ne!(handler(used), libc::SIG_DFL, "no action on signal {used}");
    assert_eq!(
        handler(unused),
        libc::SIG_DFL,
        "an action on signal {unused}"
    );
    assert!(aiofs::stats().signals > 0, "{:?}", aiofs::stats());
}

#[test]
fn good_signal_variable_is_the_signal_used() {
    if in_child("good_signal_variable_is_the_signal_used") {
        let signo = libc::SIGRTMIN() + 9;
        set_signal_variable(&format!(" {signo} "));
        runs_on(signo, libc::SIGRTMIN() + 6);
    }
}

#[test]
fn installed_config_wins_over_a_bad_signal_variable() {
    if in_child("installed_config_wins_over_a_bad_signal_variable") {
        set_signal_variable("not a number");
        let signo = libc::SIGRTMIN() + 10;
        aiofs::Config::new()
            .signal(signo)
            .install()
            .expect("install");
        runs_on(signo, libc::SIGRTMIN() + 6);
    }
}
