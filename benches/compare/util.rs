//! Helpers of the harness: numbers and their formatting, JSON fields, the data
//! pattern and its checks, data files (made once, reused, evicted, warmed),
//! random permutations, CPU and machine-noise metering.
//!
//! `examples/demo.rs` includes the harness by path: use only what examples can
//! (the dependencies and dev-dependencies), and `option_env!`, not `env!`, for
//! Cargo's bench-only variables.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

pub(crate) const KIB: usize = 1 << 10;
pub(crate) const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- numbers

/// A rate with three significant digits: 987, 1.23k, 45.6k, 1.02M.
pub(crate) fn fmt_rate(x: f64) -> String {
    let (v, unit) = match x {
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "k"),
        x => (x, ""),
    };
    let decimals = match v {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{v:.decimals$}{unit}")
}

pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// `x` with `decimals`, `-` when unknown.
pub(crate) fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// A share as a percentage, `-` when unknown.
pub(crate) fn fmt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.0}%", x * 100.0))
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

pub(crate) fn joined<T>(res: Result<T, tokio::task::JoinError>) -> io::Result<T> {
    res.map_err(io::Error::other)
}

// ---------------------------------------------------------------- JSON

pub(crate) fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => "null".to_string(),
    }
}

pub(crate) fn json_list(xs: impl Iterator<Item = f64>) -> String {
    let items: Vec<String> = xs.map(|x| json_num(Some(x))).collect();
    format!("[{}]", items.join(","))
}

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

// ---------------------------------------------------------------- the data

/// The content of every data file: each 8-byte word holds a function of its
/// own index, so data from the wrong offset (or zeros) cannot pass a check.
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
    let words = buf[head..].chunks_exact(8);
    let tail = words.remainder();
    let body = pos + head as u64;
    for (i, word) in words.enumerate() {
        let got = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        if got != pattern_word(body / 8 + i as u64) {
            let at = body + 8 * i as u64;
            let k = (0..8).find(|&k| word[k] != pattern_byte(at + k as u64));
            let k = k.unwrap_or(0);
            return Err(bad(at + k as u64, word[k]));
        }
    }
    let tail_pos = pos + (buf.len() - tail.len()) as u64;
    let bytes = buf[..head].iter().zip(pos..);
    for (&b, off) in bytes.chain(tail.iter().zip(tail_pos..)) {
        if b != pattern_byte(off) {
            return Err(bad(off, b));
        }
    }
    Ok(())
}

/// The 17 offsets a sampled check looks at in `size` bytes: both ends, odd
/// offsets too (a shifted copy cannot pass).
pub(crate) fn checkpoints(size: u64) -> Vec<u64> {
    let last = size.saturating_sub(1);
    let mut points: Vec<u64> = (0..=16u64)
        .map(|k| (last * k / 16 + k % 2).min(last))
        .collect();
    points.dedup();
    points
}

/// Checks a file's size, and 4 KiB of its content at each of [`checkpoints`].
pub(crate) fn verify_file_sampled(path: &Path, size: u64, what: &str) -> io::Result<()> {
    let f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len != size {
        return Err(io::Error::other(format!(
            "{what}: {} has {len} bytes, want {size}",
            path.display()
        )));
    }
    let mut buf = vec![0u8; 4 * KIB];
    for pos in checkpoints(size) {
        let n = (4 * KIB as u64).min(size - pos) as usize;
        f.read_exact_at(&mut buf[..n], pos)?;
        verify_pattern(&buf[..n], pos, what)?;
    }
    Ok(())
}

/// A file of `size` bytes of the pattern at `path`, made once and kept: an
/// existing file of that size whose sampled content checks out is reused.
/// Written to a temporary name, synced (its writeback must not run under the
/// measurements), then renamed. Whether it was made.
pub(crate) fn pattern_file(path: &Path, size: u64) -> io::Result<bool> {
    if fs::metadata(path).is_ok_and(|m| m.len() == size)
        && verify_file_sampled(path, size, "a kept data file").is_ok()
    {
        return Ok(false);
    }
    let tmp = path.with_extension("partial");
    let mut f = fs::File::create(&tmp)?;
    let mut chunk = vec![0u8; MIB];
    for off in (0..size).step_by(MIB) {
        let n = (MIB as u64).min(size - off) as usize;
        fill_pattern(&mut chunk[..n.next_multiple_of(8)], off);
        f.write_all(&chunk[..n])?;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(true)
}

/// Writes back every dirty page of the file system `dir` is on (`syncfs`).
pub(crate) fn sync_fs(dir: &Path) -> io::Result<()> {
    let d = fs::File::open(dir)?;
    // SAFETY: a plain syscall on a descriptor we own.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops the file's pages from the page cache (`fsync` first, so that dirty
/// pages can go too).
pub(crate) fn evict(path: &Path) -> io::Result<()> {
    let f = fs::File::open(path)?;
    f.sync_all()?;
    // SAFETY: a plain syscall on a descriptor we own.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Reads the whole file once, so that the run finds it in the page cache. The
/// 64 KiB buffer stays below glibc's mmap threshold: warming does not change
/// how the measured code's large buffers are allocated.
pub(crate) fn warm(path: &Path) -> io::Result<()> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * KIB];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The name of the memory-backed file system `dir` is on, if it is on one
/// (tmpfs and ramfs accept `O_DIRECT` on recent kernels but have no device
/// behind them, and their `sync_data` is free).
pub(crate) fn memory_fs(dir: &Path) -> io::Result<Option<&'static str>> {
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
    Ok(match st.f_type as i64 {
        0x0102_1994 => Some("tmpfs"),
        0x8584_58f6 => Some("ramfs"),
        _ => None,
    })
}

/// xorshift64*: deterministic per seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `0..n` in a random order (Fisher-Yates), deterministic per seed.
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut rng = Rng::new(seed);
    for i in (1..n).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    v
}

// ---------------------------------------------------------------- metering

/// `getrusage(RUSAGE_SELF)`, every thread of the process: user + system CPU
/// time (µs) and context switches (voluntary and not).
pub(crate) fn usage() -> (f64, f64) {
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage` for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as f64,
    )
}

/// CPU time of the whole machine (µs) spent running tasks or stolen by the
/// hypervisor, from `/proc/stat`. Interrupts are left out: at these rates
/// they are mostly the completions of the bench's own I/O.
pub(crate) fn machine_busy_us() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
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

/// Bytes moved by the block device `dev` (an `st_dev`: the data directory's
/// file system), from `/proc/diskstats`.
fn device_bytes(dev: u64) -> Option<f64> {
    let stats = fs::read_to_string("/proc/diskstats").ok()?;
    let (major, minor) = (libc::major(dev).to_string(), libc::minor(dev).to_string());
    let f: Vec<&str> = stats
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 9 && f[0] == major && f[1] == minor)?;
    // Sectors read (field 6) and written (field 10), 512 bytes each.
    Some((f[5].parse::<f64>().ok()? + f[9].parse::<f64>().ok()?) * 512.0)
}

/// Bytes this process had read from and written to storage (`/proc/self/io`).
fn own_io_bytes() -> Option<f64> {
    let io = fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| -> Option<f64> {
        io.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("read_bytes:")? + field("write_bytes:")?)
}

/// The device's bytes and this process's, for [`device_bytes`] less
/// [`own_io_bytes`] over an interval.
fn io_now(dev: Option<u64>) -> Option<(f64, f64)> {
    device_bytes(dev?).zip(own_io_bytes())
}

/// What a [`Meter`] saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metered {
    pub(crate) secs: f64,
    /// This process's CPU time, µs.
    pub(crate) cpu_us: f64,
    /// This process's context switches.
    pub(crate) csw: f64,
    /// CPU time spent outside this process (other programs, kernel threads,
    /// hypervisor steal; not interrupts), as a share of all CPUs; `None`
    /// without `/proc/stat`. Coarse for runs of a few clock ticks (10 ms).
    pub(crate) other: Option<f64>,
    /// Disk I/O on the data's device not caused by this process (others'
    /// reads and writes, writeback of others' data), MB/s; `None` without
    /// `/proc/diskstats`. Approximate: a write counts for this process when it
    /// dirties the page cache, for the device when it is written back.
    pub(crate) other_io: Option<f64>,
}

/// Wall time, this process's CPU time and the rest of the machine's, and the
/// disk I/O of others on `dev` (the data's device), from its start.
#[derive(Debug)]
pub(crate) struct Meter {
    t0: std::time::Instant,
    usage0: (f64, f64),
    busy0: Option<f64>,
    dev: Option<u64>,
    io0: Option<(f64, f64)>,
}

impl Meter {
    pub(crate) fn start(dev: Option<u64>) -> Meter {
        Meter {
            busy0: machine_busy_us(),
            io0: io_now(dev),
            dev,
            usage0: usage(),
            t0: std::time::Instant::now(),
        }
    }

    pub(crate) fn stop(self) -> Metered {
        let secs = self.t0.elapsed().as_secs_f64();
        let (cpu, csw) = usage();
        let cpu_us = cpu - self.usage0.0;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let other = self
            .busy0
            .zip(machine_busy_us())
            .map(|(b0, b1)| ((b1 - b0 - cpu_us) / (secs * 1e6 * cpus)).clamp(0.0, 1.0));
        let other_io = self
            .io0
            .zip(io_now(self.dev))
            .map(|((d0, o0), (d1, o1))| ((d1 - d0) - (o1 - o0)).max(0.0) / secs / 1e6);
        Metered {
            secs,
            cpu_us,
            csw: csw - self.usage0.1,
            other,
            other_io,
        }
    }
}
