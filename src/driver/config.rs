//! The driver's configuration: [`Config`], the environment, and the defaults.

use std::io;
use std::sync::Mutex;

use crate::sys;

/// How completion signals reach the futures waiting for them.
///
/// # Examples
///
/// ```
/// use aiofs::{Config, Notifier};
///
/// let config = Config::new().notifier(Notifier::Pipe);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notifier {
    /// The default. A signal action writes each request's token into a
    /// non-blocking self-pipe; a dedicated thread reads the pipe (with `mio`) and
    /// completes the requests it names. Works with any number of Tokio runtimes,
    /// and outside Tokio (e.g. `futures::executor::block_on`).
    Pipe,
    /// Tokio's own signal stream (`tokio::signal::unix::signal`) for the same
    /// signal number wakes a task that completes the requests whose tokens the
    /// same signal action wrote into the self-pipe (no thread hop). The stream is
    /// read by a task on a runtime; when that runtime shuts down, the next runtime
    /// that submits or polls a request takes over. Needs a Tokio runtime with IO
    /// enabled.
    Signal,
}

/// The driver's settings, installed once before first use.
///
/// Fields left unset come from the environment (`AIOFS_NOTIFIER=pipe|signal`,
/// `AIOFS_SIGNAL=<number>`, `AIOFS_NOWAIT=0|1`, `AIOFS_LISTIO=0|1`,
/// `AIOFS_READ_AHEAD=<n>`, `AIOFS_MAX_POOL_FDS=<n>`,
/// `AIOFS_RUNTIME_DELIVERY=0|1`) and otherwise from the
/// defaults: [`Notifier::Pipe`], signal `SIGRTMIN() + 6`, an in-flight limit of
/// a quarter of `RLIMIT_SIGPENDING` (at most 1024), the page-cache fast path
/// for reads of up to 128 KiB, queued requests started together with
/// `lio_listio`, a read-ahead window of 6 reads, and at most 64 duplicate
/// descriptors (fewer under a low `RLIMIT_NOFILE`).
///
/// # Examples
///
/// ```
/// use aiofs::{Config, Notifier};
///
/// # fn main() -> std::io::Result<()> {
/// Config::new().notifier(Notifier::Pipe).max_in_flight(256).install()?;
/// // Installing the same configuration again is fine.
/// Config::new().notifier(Notifier::Pipe).max_in_flight(256).install()?;
/// // A different one is refused.
/// assert!(Config::new().max_in_flight(8).install().is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    notifier: Option<Notifier>,
    signal: Option<i32>,
    max_in_flight: Option<usize>,
    nowait: Option<bool>,
    nowait_max: Option<usize>,
    listio: Option<bool>,
    read_ahead: Option<usize>,
    max_pool_fds: Option<usize>,
    runtime_delivery: Option<bool>,
}

/// The stream's read-ahead window, by default: up to this many reads in flight.
pub(crate) const DEFAULT_READ_AHEAD: usize = 6;
/// The largest read-ahead window.
pub(crate) const MAX_READ_AHEAD: usize = 16;

/// The largest read tried on the calling thread with `RWF_NOWAIT`, by default:
/// copying 128 KiB out of the page cache takes about 15 µs here, short enough
/// not to hold up the other tasks of a runtime thread.
pub(crate) const DEFAULT_NOWAIT_MAX: usize = 128 * 1024;

/// The resolved settings the driver runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) notifier: Notifier,
    pub(crate) signal: i32,
    pub(crate) max_in_flight: usize,
    /// The largest read tried with `RWF_NOWAIT` first; 0: never.
    pub(crate) nowait_max: usize,
    /// Whether queued requests start together with `lio_listio`.
    pub(crate) listio: bool,
    /// The stream's read-ahead window (reads in flight); 0: no read-ahead.
    pub(crate) read_ahead: usize,
    /// The most duplicate descriptors open at once in the process.
    pub(crate) max_pool_fds: usize,
    /// Pipe notifier: completions read by the runtimes' reactors.
    pub(crate) runtime_delivery: bool,
}

struct State {
    installed: Option<Config>,
    started: Option<Settings>,
}

static STATE: Mutex<State> = Mutex::new(State {
    installed: None,
    started: None,
});

impl Config {
    /// A configuration with every field unset.
    pub fn new() -> Config {
        Config::default()
    }

    /// Chooses the notifier.
    pub fn notifier(mut self, notifier: Notifier) -> Config {
        self.notifier = Some(notifier);
        self
    }

    /// Chooses the completion signal number (default `SIGRTMIN() + 6`).
    ///
    /// It must be a real signal number, not one Tokio and `signal-hook` forbid
    /// (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`), and not one the C
    /// library reserves (between the standard signals and `SIGRTMIN()`); that is
    /// checked by [`install`](Config::install). A real-time signal is strongly
    /// advised: standard signals are not queued, so completions would be merged
    /// (the driver still finds them by scanning, but slower).
    pub fn signal(mut self, signo: i32) -> Config {
        self.signal = Some(signo);
        self
    }

    /// The most requests handed to the OS at once; more wait in FIFO order.
    ///
    /// Keep it well below `RLIMIT_SIGPENDING` (shared by all of the user's
    /// processes): each request in flight may hold a queued signal.
    pub fn max_in_flight(mut self, limit: usize) -> Config {
        self.max_in_flight = Some(limit);
        self
    }

    /// Whether a positioned read first tries the page cache on the calling
    /// thread, with `preadv2(RWF_NOWAIT)` (Linux; default on, or from
    /// `AIOFS_NOWAIT=0|1`).
    ///
    /// A read the page cache holds then completes in its first poll, in about a
    /// microsecond for 4 KiB, without a trip through glibc's AIO thread and the
    /// completion signal. A read it does not hold fails at once with `EAGAIN`
    /// inside the kernel and takes the AIO path, as does every read on a
    /// filesystem that refuses the flag (remembered per descriptor), on an
    /// `O_DIRECT` descriptor, or larger than [`nowait_max`](Config::nowait_max).
    /// The read's result is the same either way; [`Stats::nowait_reads`] and
    /// [`Stats::nowait_misses`] count the two paths.
    ///
    /// [`Stats::nowait_reads`]: crate::Stats::nowait_reads
    /// [`Stats::nowait_misses`]: crate::Stats::nowait_misses
    pub fn nowait(mut self, enable: bool) -> Config {
        self.nowait = Some(enable);
        self
    }

    /// The largest read that tries the page cache first (default 128 KiB): a
    /// larger read is copied by glibc's AIO thread instead, so that a runtime
    /// thread never spends long copying. See [`nowait`](Config::nowait).
    pub fn nowait_max(mut self, bytes: usize) -> Config {
        self.nowait_max = Some(bytes);
        self
    }

    /// Whether requests that wait in the queue start together, with one
    /// `lio_listio` call, when several can start at once (default on, or from
    /// `AIOFS_LISTIO=0|1`). Off, each starts with its own `aio_read` /
    /// `aio_write`. Batches and vectored calls still start with `lio_listio`
    /// when they start on their own.
    /// `Stats::listio_calls` counts the calls.
    pub fn listio(mut self, enable: bool) -> Config {
        self.listio = Some(enable);
        self
    }

    /// The stream's read-ahead window: how many reads a sequential
    /// `AsyncRead` reader keeps in flight ahead of itself (default 6, at most
    /// 16, or from `AIOFS_READ_AHEAD=<n>`). 0 or 1 turns read-ahead off: every
    /// read then reads exactly what was asked, as `tokio::fs` does.
    pub fn read_ahead(mut self, window: usize) -> Config {
        self.read_ahead = Some(window);
        self
    }

    /// The most duplicate descriptors aiofs keeps open at once, in the whole
    /// process (default: 64, or an eighth of `RLIMIT_NOFILE` if that is less;
    /// or from `AIOFS_MAX_POOL_FDS=<n>`).
    ///
    /// glibc runs one request per descriptor at a time, so aiofs spreads reads
    /// that wait for the device over duplicates of a file's descriptor (see
    /// [`File::set_fd_pool`](crate::File::set_fd_pool)), made when the queue
    /// depth needs them and closed when idle. They count against
    /// `RLIMIT_NOFILE` like any descriptor: this bound keeps them from starving
    /// your own `open` calls. When it is reached, or `dup` fails (`EMFILE`),
    /// requests run on the descriptors there are. 0 disables duplicates.
    /// `Stats::pool_fds` shows how many are open.
    pub fn max_pool_fds(mut self, n: usize) -> Config {
        self.max_pool_fds = Some(n);
        self
    }

    /// Pipe notifier: whether completions are read by the Tokio runtime that
    /// waits for them (default on, or from `AIOFS_RUNTIME_DELIVERY=0|1`).
    ///
    /// On, each runtime that submits or waits registers the self-pipe of
    /// completion tokens (and, once the signal is blocked, the `signalfd`) with
    /// its own reactor: the worker that wakes for a completion is the one that
    /// runs the task waiting for it, as with `spawn_blocking`, instead of the
    /// `aiofs-notifier` thread waking first and then waking the worker. The
    /// thread still runs the recovery timer, and reads for requests made
    /// outside Tokio (or from a runtime without IO). Off, the thread reads
    /// every completion.
    pub fn runtime_delivery(mut self, enable: bool) -> Config {
        self.runtime_delivery = Some(enable);
        self
    }

    /// Installs this configuration for the process.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` for a bad signal number or a zero limit;
    /// - `AlreadyExists` if a different configuration was installed already, or
    ///   the driver already started (the first request starts it) with other
    ///   settings. Installing the same configuration again is `Ok`.
    pub fn install(self) -> io::Result<()> {
        if let Some(signo) = self.signal {
            sys::signal::validate(signo)?;
        }
        if self.max_in_flight == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "aiofs: Config::max_in_flight must be at least 1",
            ));
        }
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(started) = state.started {
            let wanted = resolve(&self)?;
            if wanted == started {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "aiofs: the driver already started with {started:?}; {self:?} must be installed before the first request"
                ),
            ));
        }
        match &state.installed {
            Some(installed) if *installed != self => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("aiofs: {installed:?} is installed already; refusing a different {self:?}"),
            )),
            _ => {
                state.installed = Some(self);
                Ok(())
            }
        }
    }
}

/// The settings the driver runs with, or would start with now.
pub(crate) fn current_settings() -> io::Result<Settings> {
    let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    match state.started {
        Some(started) => Ok(started),
        None => resolve(&state.installed.clone().unwrap_or_default()),
    }
}

/// Resolves the settings for the driver's start and records them as started.
pub(crate) fn start_settings() -> io::Result<Settings> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let config = state.installed.clone().unwrap_or_default();
    let settings = resolve(&config)?;
    state.started = Some(settings);
    Ok(settings)
}

fn resolve(config: &Config) -> io::Result<Settings> {
    let notifier = match config.notifier {
        Some(n) => n,
        None => match env("AIOFS_NOTIFIER")? {
            None => Notifier::Pipe,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "pipe" => Notifier::Pipe,
                "signal" => Notifier::Signal,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("aiofs: AIOFS_NOTIFIER={v:?} is not `pipe` or `signal`"),
                    ));
                }
            },
        },
    };
    let signal = match config.signal {
        Some(s) => s,
        None => match env("AIOFS_SIGNAL")? {
            None => sys::signal::default_signal(),
            Some(v) => {
                let bad = |why: String| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("aiofs: AIOFS_SIGNAL={v:?}: {why}"),
                    )
                };
                let signo: i32 = v
                    .trim()
                    .parse()
                    .map_err(|_| bad("not a signal number".to_owned()))?;
                sys::signal::validate(signo).map_err(|e| bad(e.to_string()))?;
                signo
            }
        },
    };
    let max_in_flight = match config.max_in_flight {
        Some(n) => n,
        None => default_limit(),
    };
    let nowait = match config.nowait {
        Some(on) => on,
        None => env_flag("AIOFS_NOWAIT")?.unwrap_or(true),
    };
    let nowait_max = if nowait {
        config.nowait_max.unwrap_or(DEFAULT_NOWAIT_MAX)
    } else {
        0
    };
    let listio = match config.listio {
        Some(on) => on,
        None => env_flag("AIOFS_LISTIO")?.unwrap_or(true),
    };
    let read_ahead = match config.read_ahead {
        Some(n) => n,
        None => match env("AIOFS_READ_AHEAD")? {
            None => DEFAULT_READ_AHEAD,
            Some(v) => v.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("aiofs: AIOFS_READ_AHEAD={v:?} is not a number of reads"),
                )
            })?,
        },
    }
    .min(MAX_READ_AHEAD);
    let max_pool_fds = match config.max_pool_fds {
        Some(n) => n,
        None => match env("AIOFS_MAX_POOL_FDS")? {
            None => default_pool_fds(),
            Some(v) => v.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("aiofs: AIOFS_MAX_POOL_FDS={v:?} is not a number of descriptors"),
                )
            })?,
        },
    };
    let runtime_delivery = match config.runtime_delivery {
        Some(on) => on,
        None => env_flag("AIOFS_RUNTIME_DELIVERY")?.unwrap_or(true),
    };
    Ok(Settings {
        notifier,
        signal,
        max_in_flight,
        nowait_max,
        listio,
        read_ahead,
        max_pool_fds,
        runtime_delivery,
    })
}

/// 64, or an eighth of `RLIMIT_NOFILE` if that is less.
fn default_pool_fds() -> usize {
    match sys::nofile_limit() {
        Some(limit) => (limit / 8).min(64) as usize,
        None => 64,
    }
}

/// A quarter of `RLIMIT_SIGPENDING`, between 1 and 1024.
fn default_limit() -> usize {
    match sys::sigpending_limit() {
        Some(limit) => (limit / 4).clamp(1, 1024) as usize,
        None => 1024,
    }
}

/// A `0|1` variable (also `off|on`, `false|true`, `no|yes`).
fn env_flag(name: &str) -> io::Result<Option<bool>> {
    let Some(v) = env(name)? else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "on" | "true" | "yes" => Ok(Some(true)),
        "0" | "off" | "false" | "no" => Ok(Some(false)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("aiofs: {name}={v:?} is not `0` or `1`"),
        )),
    }
}

fn env(name: &str) -> io::Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("aiofs: {name} is not valid UTF-8"),
        )),
    }
}
