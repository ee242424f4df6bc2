//! Helpers the benches share: medians, ratios and their formatting, JSON
//! fields, the data pattern and its checks, data files and where O_DIRECT ones
//! may go, random offsets, CPU and machine-noise metering, tokio-uring's
//! aligned buffer. Each bench uses some of them.
//!
//! `benches/compare/workloads.rs` includes this file by path, and
//! `examples/demo.rs` may include that one: use only what examples can (the
//! dependencies and dev-dependencies), and `option_env!`, not `env!`, for
//! Cargo's bench-only variables.

#![allow(dead_code)]

use std::io;

/// A rate with three significant digits: 987, 1.23k, 45.6k, 1.02M.
pub(crate) fn fmt_rate(x: f64) -> String {
    let (v, unit) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}{unit}")
}

pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

pub(crate) fn joined<T>(res: std::result::Result<T, tokio::task::JoinError>) -> io::Result<T> {
    res.map_err(io::Error::other)
}

pub(crate) fn json_list(xs: impl Iterator<Item = f64>) -> String {
    let items: Vec<String> = xs.map(|x| json_num(Some(x))).collect();
    format!("[{}]", items.join(","))
}

pub(crate) fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => "null".to_string(),
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `a / b`, or `None` when it means nothing (a zero or non-finite figure).
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (r.is_finite() && r > 0.0).then_some(r)
}

// ---------------------------------------------------------------- the data

pub(crate) const KIB: usize = 1 << 10;
pub(crate) const MIB: usize = 1 << 20;

/// The benches' file content: each 8-byte word holds a function of its own
/// index, so data from the wrong offset (or zeros) cannot pass a check.
pub(crate) fn pattern_word(word: u64) -> u64 {
    word.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_5a5a_5a5a_5a5a
}

pub(crate) fn pattern_byte(off: u64) -> u8 {
    pattern_word(off / 8).to_le_bytes()[(off % 8) as usize]
}

/// Fills `buf` with the pattern at file offset `pos` (both multiples of 8).
pub(crate) fn fill_pattern(buf: &mut [u8], pos: u64) {
    assert!(pos.is_multiple_of(8) && buf.len().is_multiple_of(8));
    for (i, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&pattern_word(pos / 8 + i as u64).to_le_bytes());
    }
}

/// Checks that `buf` is the pattern at file offset `pos` (any alignment).
pub(crate) fn verify_pattern(buf: &[u8], pos: u64, what: &str) -> io::Result<()> {
    let bad = |off: u64, got: u8| {
        io::Error::other(format!(
            "{what}: wrong data at offset {off} (got {got:#04x}, want {:#04x})",
            pattern_byte(off)
        ))
    };
    let head = (((8 - pos % 8) % 8) as usize).min(buf.len());
    for (i, &b) in buf[..head].iter().enumerate() {
        if b != pattern_byte(pos + i as u64) {
            return Err(bad(pos + i as u64, b));
        }
    }
    let body_pos = pos + head as u64;
    let words = buf[head..].chunks_exact(8);
    let tail = words.remainder();
    let tail_pos = body_pos + (buf.len() - head - tail.len()) as u64;
    for (i, word) in words.enumerate() {
        let got = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        if got != pattern_word(body_pos / 8 + i as u64) {
            let at = body_pos + 8 * i as u64;
            let k = (0..8).find(|&k| word[k] != pattern_byte(at + k as u64));
            let k = k.unwrap_or(0);
            return Err(bad(at + k as u64, word[k]));
        }
    }
    for (i, &b) in tail.iter().enumerate() {
        if b != pattern_byte(tail_pos + i as u64) {
            return Err(bad(tail_pos + i as u64, b));
        }
    }
    Ok(())
}

/// Checks a file's size, and 4 KiB of its content at 17 places (both ends
/// included, odd offsets too, so that a shifted copy cannot pass).
pub(crate) fn verify_file_sampled(
    path: &std::path::Path,
    size: usize,
    what: &str,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len != size as u64 {
        return Err(io::Error::other(format!(
            "{what}: the file has {len} bytes, want {size}"
        )));
    }
    let block = size.min(4 * KIB);
    let mut buf = vec![0u8; block];
    let last = (size - block) as u64;
    for k in 0..=16u64 {
        let pos = (last * k / 16 + k % 2).min(last);
        f.read_exact_at(&mut buf, pos)?;
        verify_pattern(&buf, pos, what)?;
    }
    Ok(())
}

/// Writes a file of the pattern with buffered writes, synced so that its
/// writeback does not run under the measurements.
pub(crate) fn write_pattern_file(path: &std::path::Path, size: usize) -> io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create_new(path)?;
    let mut chunk = vec![0u8; MIB];
    for off in (0..size).step_by(MIB) {
        let n = MIB.min(size - off);
        fill_pattern(&mut chunk[..n], off as u64);
        f.write_all(&chunk[..n])?;
    }
    f.sync_all()
}

/// Writes a file of the pattern with `O_DIRECT` (so that it does not fill the
/// page cache; `size` a multiple of 1 MiB), syncs it and drops whatever of it
/// is cached.
pub(crate) fn write_direct_file(path: &std::path::Path, size: usize) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut chunk = aiofs::buf::AlignedBuf::new(4096, MIB);
    chunk.resize(MIB, 0);
    for off in (0..size).step_by(MIB) {
        fill_pattern(&mut chunk, off as u64);
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    // SAFETY: a plain syscall on a descriptor we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Reads the whole file once (1 MiB reads), so that the next run finds it in
/// the page cache (these machines drop idle page cache after ~30 s).
pub(crate) fn warm_file(path: &std::path::Path) -> io::Result<()> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; MIB];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `statfs` magic numbers of file systems with no device behind them.
pub(crate) const MEMORY_FS: [(i64, &str); 2] = [(0x0102_1994, "tmpfs"), (0x8584_58f6, "ramfs")];

/// The name of the memory-backed file system `dir` is on, if it is on one.
pub(crate) fn memory_fs(dir: &std::path::Path) -> io::Result<Option<&'static str>> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut path = dir.as_os_str().as_bytes().to_vec();
    path.push(0);
    // SAFETY: `statfs` is plain old data; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is valid for writes during the call.
    let rc = unsafe { libc::statfs(path.as_ptr().cast(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // `f_type`'s type differs between targets
    let t = st.f_type as i64;
    Ok(MEMORY_FS
        .iter()
        .find(|(m, _)| *m == t)
        .map(|(_, name)| *name))
}

/// A stream of random `block`-aligned offsets below `blocks * block`
/// (xorshift64*), one per task and seed.
#[derive(Debug, Clone)]
pub(crate) struct RandomOffsets {
    state: u64,
    blocks: u64,
    block: u64,
}

impl RandomOffsets {
    pub(crate) fn new(seed: u64, task: usize, blocks: u64, block: u64) -> RandomOffsets {
        let seed = 0x2545_f491_4f6c_dd1d_u64
            ^ (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        RandomOffsets {
            state: seed | 1,
            blocks: blocks.max(1),
            block,
        }
    }
}

impl Iterator for RandomOffsets {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Some((r >> 11) % self.blocks * self.block)
    }
}

// ---------------------------------------------------------------- measuring

/// `getrusage(RUSAGE_SELF)`: every thread of the process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// User + system CPU time, µs.
    pub(crate) cpu_us: f64,
    /// Context switches, voluntary and not.
    pub(crate) csw: f64,
    /// Minor page faults.
    pub(crate) minflt: f64,
}

pub(crate) fn usage() -> Usage {
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    Usage {
        cpu_us: tv(ru.ru_utime) + tv(ru.ru_stime),
        csw: (ru.ru_nvcsw + ru.ru_nivcsw) as f64,
        minflt: ru.ru_minflt as f64,
    }
}

/// CPU time of the whole machine (µs) spent running tasks or stolen by the
/// hypervisor, from `/proc/stat`. Interrupts are left out: at these rates
/// they are mostly the completions of the bench's own I/O.
pub(crate) fn machine_busy_us() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .map(|t| t.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    // (guest time is already in user).
    let busy = ticks.first()? + ticks.get(1)? + ticks.get(2)? + ticks.get(7).unwrap_or(&0.0);
    // SAFETY: `sysconf` has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy * 1e6 / hz as f64)
}

/// What a [`Meter`] saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metered {
    pub(crate) secs: f64,
    /// This process's [`usage`] over the interval.
    pub(crate) usage: Usage,
    /// CPU time spent outside this process during the interval (other
    /// programs, kernel threads, time stolen by the hypervisor; not
    /// interrupts), as a share of all CPUs; `None` without `/proc/stat`.
    pub(crate) other: Option<f64>,
}

/// Wall time, this process's CPU time and the rest of the machine's, from its start.
#[derive(Debug)]
pub(crate) struct Meter {
    t0: std::time::Instant,
    usage0: Usage,
    busy0: Option<f64>,
}

impl Meter {
    pub(crate) fn start() -> Meter {
        Meter {
            busy0: machine_busy_us(),
            usage0: usage(),
            t0: std::time::Instant::now(),
        }
    }

    pub(crate) fn stop(self) -> Metered {
        let secs = self.t0.elapsed().as_secs_f64();
        let u = usage();
        let busy = machine_busy_us();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu_us = u.cpu_us - self.usage0.cpu_us;
        let other = self
            .busy0
            .zip(busy)
            .map(|(b0, b1)| ((b1 - b0 - cpu_us) / (secs * 1e6 * cpus)).max(0.0));
        Metered {
            secs,
            usage: Usage {
                cpu_us,
                csw: u.csw - self.usage0.csw,
                minflt: u.minflt - self.usage0.minflt,
            },
            other,
        }
    }
}

// ---------------------------------------------------------------- output

pub(crate) fn json_str(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A share as a percentage, `-` when unknown.
pub(crate) fn fmt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.0}%", x * 100.0))
}

// ---------------------------------------------------------------- tokio-uring

/// `AlignedBuf` for tokio-uring's buffer traits (for `O_DIRECT` reads).
#[cfg(target_os = "linux")]
pub(crate) struct UringBuf(pub(crate) aiofs::buf::AlignedBuf);

#[cfg(target_os = "linux")]
impl std::ops::Deref for UringBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

// SAFETY: the allocation never moves (the struct only holds its pointer);
// `len <= capacity` bytes are initialised.
#[cfg(target_os = "linux")]
unsafe impl tokio_uring::buf::IoBuf for UringBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: as for `IoBuf`; the pointer is valid for writes of `capacity`
// bytes, and `set_init` only records what the kernel initialised.
#[cfg(target_os = "linux")]
unsafe impl tokio_uring::buf::IoBufMut for UringBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        aiofs::buf::IoBufMut::stable_mut_ptr(&mut self.0)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.0.len() {
            // SAFETY: the caller (tokio-uring) guarantees the first `pos`
            // bytes were initialised by the kernel; `pos <= capacity`.
            unsafe { aiofs::buf::IoBufMut::set_init(&mut self.0, pos) }
        }
    }
}
