//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod process;
pub mod traffic;
pub mod workload;

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Sends every read of this test binary through AIO, without the page-cache
/// fast path (`Config::nowait(false)`; the notifier still comes from the
/// environment): for the tests of the AIO path itself, whose reads must be in
/// flight (cancellation, runtimes going away, full signal queues).
pub fn aio_only() {
    aiofs::Config::new()
        .nowait(false)
        .install()
        .expect("install Config::new().nowait(false)");
}

/// Serialises the tests of one binary that look at process-wide state
/// (`aiofs::stats()`, descriptors). A test that panicked while holding it does
/// not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many descriptors the process has open (the entries of `/proc/self/fd`,
/// the directory's own descriptor included).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// How many open descriptors name a file under `dir`.
///
/// Unlike [`open_fds`], other tests (building or dropping their runtimes) cannot
/// change it.
pub fn open_fds_under(dir: &Path) -> usize {
    let dir = dir.canonicalize().expect("canonicalize");
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count()
}

/// Waits until no request is in flight or queued, for at most 10 s.
///
/// # Panics
///
/// After 10 s, with the driver's counters.
pub async fn settle() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = aiofs::stats();
        if stats.in_flight == 0 && stats.queued == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "aiofs did not settle within 10 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Awaits `fut` for at most `secs` seconds.
///
/// # Panics
///
/// If it takes longer, naming `what`, with the driver's counters as they were
/// while `fut` was still waiting (dropping it would orphan its request).
pub async fn bounded<F: Future>(what: &str, secs: u64, fut: F) -> F::Output {
    let fut = std::pin::pin!(fut);
    tokio::select! {
        out = fut => out,
        () = tokio::time::sleep(Duration::from_secs(secs)) => {
            panic!("{what} did not finish within {secs} s: {:?}", aiofs::stats())
        }
    }
}

/// Names the test a child process of a test binary runs alone.
const CHILD: &str = "AIOFS_TEST_CHILD";

/// Runs the test `name` alone in a child process of this test binary.
///
/// Returns `true` in that child: the caller runs the test's body. Returns
/// `false` in the parent once the child passed.
///
/// For tests that must not share the process with others (no runtime may
/// exist), or that could leave it in a state others would see (requests
/// stranded in flight).
///
/// # Panics
///
/// In the parent, with the child's output, if the child failed or did not run
/// the test.
pub fn in_child(name: &str) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .output()
        .expect("run the child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its child process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child process did not run {name}:\n{stdout}\n{stderr}"
    );
    false
}

/// A deterministic xorshift64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // The state must not be zero.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The byte expected at file position `i`: not periodic in any power of two, so
/// data read from the wrong place shows.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// `pattern(pos..pos + len)`.
pub fn pattern_bytes(pos: u64, len: usize) -> Vec<u8> {
    (pos..pos + len as u64).map(pattern).collect()
}

/// The end of a test: nothing left in flight or orphaned.
pub async fn idle() {
    settle().await;
    let stats = aiofs::stats();
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.orphaned, 0, "{stats:?}");
}

/// Opens `path` for reading and writing.
pub async fn open_rw(path: &std::path::Path) -> aiofs::File {
    aiofs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .await
        .expect("open read-write")
}

/// A tmpfs of a given size mounted on a fresh temporary directory (a disk that
/// fills up); unmounted on drop, also when the test panics.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason on stderr, naming `test`) when not root or when
    /// mounting fails: the caller skips its test.
    pub fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {test}: needs root to mount a small tmpfs (disk full)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED {test}: `mount -t tmpfs` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED {test}: cannot run `mount`: {e}");
                None
            }
        }
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Requests still in flight hold descriptors on the mount: give them a
        // moment (bounded) so that the plain unmount succeeds.
        let deadline = Instant::now() + Duration::from_secs(10);
        while aiofs::stats().in_flight != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy: detach it anyway, so nothing is left mounted.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Good requests on a file of their own, kept going while a test makes a fault
/// happen elsewhere: the driver must go on serving them.
///
/// Each round writes `BG_BLOCKS` blocks of new data with concurrent
/// `write_all_at`s, then reads them back, with the read-only region, in one
/// `Batch` and with concurrent `read_exact_at`s, checking every byte.
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Result<u64, String>>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const BG_BLOCK: usize = 4096;
const BG_BLOCKS: u64 = 16;
/// The read-only region starts here (after the blocks the rounds write).
const BG_FIXED: u64 = BG_BLOCKS * BG_BLOCK as u64;
/// Where round `r`'s data comes from in the pattern.
fn bg_base(round: u64) -> u64 {
    (round + 1) << 40
}

impl Background {
    /// Starts the load (on the current runtime) and returns once its first
    /// round is done: it is running when the fault begins.
    pub async fn start() -> Background {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("background");
        let mut content = vec![0u8; BG_FIXED as usize];
        content.extend(pattern_bytes(BG_FIXED, 16 * BG_BLOCK));
        std::fs::write(&path, &content).expect("write the background file");
        let file = std::sync::Arc::new(open_rw(&path).await);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let stop = std::sync::Arc::clone(&stop);
            async move {
                let mut first = Some(first_tx);
                let mut round = 0;
                loop {
                    // The last round starts after `finish` asked for the end.
                    let last = stop.load(std::sync::atomic::Ordering::Acquire);
                    Background::round(&file, round).await?;
                    round += 1;
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                    if last {
                        return Ok(round);
                    }
                }
            }
        });
        let bg = Background {
            stop,
            task,
            path,
            _dir: dir,
        };
        tokio::select! {
            _ = first_rx => bg,
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                panic!("the background load's first round took over 30 s: {:?}", aiofs::stats())
            }
        }
    }

    async fn round(file: &std::sync::Arc<aiofs::File>, round: u64) -> Result<(), String> {
        let base = bg_base(round);
        let writes = (0..BG_BLOCKS).map(|k| {
            let file = std::sync::Arc::clone(file);
            let pos = k * BG_BLOCK as u64;
            tokio::spawn(async move {
                let (res, _) = file
                    .write_all_at(pattern_bytes(base + pos, BG_BLOCK), pos)
                    .await;
                res.map_err(|e| format!("background round {round}: write_all_at {pos}: {e}"))
            })
        });
        for w in futures::future::join_all(writes).await {
            w.map_err(|e| format!("background write task: {e}"))??;
        }
        let mut batch = aiofs::Batch::new();
        for k in 0..BG_BLOCKS {
            batch.read_at(file, Vec::with_capacity(BG_BLOCK), k * BG_BLOCK as u64);
        }
        let reads = (0..BG_BLOCKS).map(|k| {
            let pos = BG_FIXED + k * BG_BLOCK as u64;
            async move {
                let (res, buf) = file.read_exact_at(vec![0; BG_BLOCK], pos).await;
                (pos, res, buf)
            }
        });
        let (batch, reads) = futures::join!(batch.submit(), futures::future::join_all(reads));
        for (k, (res, buf)) in batch.into_iter().enumerate() {
            let pos = k as u64 * BG_BLOCK as u64;
            match res {
                Ok(BG_BLOCK) if buf == pattern_bytes(base + pos, BG_BLOCK) => {}
                Ok(BG_BLOCK) => {
                    return Err(format!(
                        "background round {round}: batch read {pos}: wrong data"
                    ));
                }
                other => {
                    return Err(format!(
                        "background round {round}: batch read {pos}: {other:?}"
                    ));
                }
            }
        }
        for (pos, res, buf) in reads {
            res.map_err(|e| format!("background round {round}: read_exact_at {pos}: {e}"))?;
            if buf != pattern_bytes(pos, BG_BLOCK) {
                return Err(format!(
                    "background round {round}: read_exact_at {pos}: wrong data"
                ));
            }
        }
        Ok(())
    }

    /// Ends the load after one more round, started now; panics if any request
    /// failed or returned wrong data, or if the file does not hold what the
    /// last round wrote. Returns the number of rounds.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let rounds = match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(rounds))) => rounds,
            Ok(Ok(Err(e))) => panic!("the background load failed: {e}"),
            Ok(Err(e)) => panic!("the background load panicked: {e}"),
            Err(_) => panic!(
                "the background load did not finish within 30 s: {:?}",
                aiofs::stats()
            ),
        };
        let content = std::fs::read(&self.path).expect("read the background file");
        let mut want = pattern_bytes(bg_base(rounds - 1), BG_FIXED as usize);
        want.extend(pattern_bytes(BG_FIXED, 16 * BG_BLOCK));
        assert!(
            content == want,
            "the background file does not hold its last round"
        );
        rounds
    }
}

/// Pages whose first touch blocks the touching thread until [`Stall::release`]
/// (`userfaultfd`, missing-page mode).
///
/// A read into one ([`Stall::buf`]) stalls the glibc worker that runs it in the
/// kernel's copy to the page, and glibc runs one request per descriptor at a
/// time: every request made on that descriptor afterwards waits behind it,
/// submitted (or queued in the driver) but not run, for as long as the test
/// needs. Nothing else is held: other descriptors, the driver and the runtime
/// go on.
pub struct Stall {
    uffd: std::os::fd::OwnedFd,
    base: *mut u8,
    pages: usize,
}

/// `linux/userfaultfd.h`, with the generic ioctl encoding
/// (`_IOWR(0xAA, nr, size)`) of x86_64, aarch64 and riscv64.
mod uffd {
    pub(super) const API: u64 = 0xAA;
    pub(super) const IOC_API: u64 = 0xC018_AA3F;
    pub(super) const IOC_REGISTER: u64 = 0xC020_AA00;
    pub(super) const IOC_ZEROPAGE: u64 = 0xC020_AA04;
    pub(super) const REGISTER_MODE_MISSING: u64 = 1;
    pub(super) const EVENT_PAGEFAULT: u8 = 0x12;

    #[repr(C)]
    pub(super) struct Api {
        pub(super) api: u64,
        pub(super) features: u64,
        pub(super) ioctls: u64,
    }

    #[repr(C)]
    pub(super) struct Range {
        pub(super) start: u64,
        pub(super) len: u64,
    }

    #[repr(C)]
    pub(super) struct Register {
        pub(super) range: Range,
        pub(super) mode: u64,
        pub(super) ioctls: u64,
    }

    #[repr(C)]
    pub(super) struct Zeropage {
        pub(super) range: Range,
        pub(super) mode: u64,
        pub(super) zeropage: i64,
    }

    /// `struct uffd_msg` (32 bytes): the event, then for a page fault its
    /// flags and address.
    #[repr(C)]
    pub(super) struct Msg {
        pub(super) event: u8,
        pub(super) reserved: [u8; 7],
        pub(super) flags: u64,
        pub(super) address: u64,
        pub(super) rest: u64,
    }
}

// SAFETY: `base` is only an address here: the pages are written by the kernel
// (through the buffers handed out) and mapped by `release`'s ioctl.
unsafe impl Send for Stall {}
// SAFETY: as for `Send`; every method takes `&self` and only makes syscalls.
unsafe impl Sync for Stall {}

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl Stall {
    /// `pages` stalling pages, or `None` (saying why on stderr) where
    /// `userfaultfd` is not allowed (not root, an older kernel, another
    /// architecture).
    pub fn new(pages: usize) -> Option<Stall> {
        if !cfg!(all(
            target_os = "linux",
            any(
                target_arch = "x86_64",
                target_arch = "aarch64",
                target_arch = "riscv64"
            )
        )) {
            eprintln!("userfaultfd: not set up for this architecture");
            return None;
        }
        if std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload")) {
            eprintln!("userfaultfd: not under valgrind, which does not know it");
            return None;
        }
        use std::os::fd::{AsRawFd, FromRawFd};
        let page = page_size();
        // SAFETY: a plain syscall with flags only; kernel faults (not only user
        // ones) are handled, which needs CAP_SYS_PTRACE or the sysctl.
        let fd =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            eprintln!("userfaultfd: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let uffd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        let raw = uffd.as_raw_fd();
        let mut api = uffd::Api {
            api: uffd::API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: `api` is a valid `struct uffdio_api` for the kernel to update.
        if unsafe { libc::ioctl(raw, uffd::IOC_API as _, &mut api) } != 0 {
            eprintln!("UFFDIO_API: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: a fresh private anonymous mapping, no address hint.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            eprintln!("mmap: {}", std::io::Error::last_os_error());
            return None;
        }
        let mut reg = uffd::Register {
            range: uffd::Range {
                start: base as u64,
                len: (pages * page) as u64,
            },
            mode: uffd::REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: `reg` is a valid `struct uffdio_register` naming our mapping.
        if unsafe { libc::ioctl(raw, uffd::IOC_REGISTER as _, &mut reg) } != 0 {
            eprintln!("UFFDIO_REGISTER: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(Stall {
            uffd,
            base: base.cast(),
            pages,
        })
    }

    /// A read buffer on page `i` (each page stalls one read).
    pub fn buf(&self, i: usize) -> StallBuf {
        assert!(i < self.pages, "page {i} of {}", self.pages);
        StallBuf {
            ptr: self.base.wrapping_add(i * page_size()),
            cap: page_size(),
            len: 0,
        }
    }

    /// Blocks (at most 10 s) until `n` threads wait on the pages.
    ///
    /// # Panics
    ///
    /// After 10 s.
    pub fn wait_stalled(&self, n: usize) {
        use std::os::fd::AsRawFd;
        let raw = self.uffd.as_raw_fd();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        while seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {seen} of {n} reads reached their stalling page within 10 s: {:?}",
                aiofs::stats()
            );
            let mut pfd = libc::pollfd {
                fd: raw,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid `pollfd`.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) } <= 0 {
                continue;
            }
            // SAFETY: all-zero bytes are a valid `Msg`.
            let mut msg: uffd::Msg = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<uffd::Msg>();
            // SAFETY: reads at most `size` bytes into `msg`.
            let got = unsafe { libc::read(raw, (&raw mut msg).cast(), size) };
            if got == size as isize && msg.event == uffd::EVENT_PAGEFAULT {
                seen += 1;
            }
        }
    }

    /// Maps the pages (zero-filled): the stalled threads go on.
    ///
    /// # Panics
    ///
    /// If the kernel refuses.
    pub fn release(&self) {
        use std::os::fd::AsRawFd;
        let mut zp = uffd::Zeropage {
            range: uffd::Range {
                start: self.base as u64,
                len: (self.pages * page_size()) as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: `zp` is a valid `struct uffdio_zeropage` naming our mapping.
        let rc = unsafe { libc::ioctl(self.uffd.as_raw_fd(), uffd::IOC_ZEROPAGE as _, &mut zp) };
        assert_eq!(
            rc,
            0,
            "UFFDIO_ZEROPAGE: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A read of a file's own descriptor held in the kernel by a stalling page
/// ([`Stall`]): glibc runs one request per descriptor at a time, so every
/// request made on that descriptor afterwards (the stream's writes, the
/// positioned writes) waits behind it, in flight, until [`release`](Self::release).
///
/// The read (a page) must go through AIO: with [`aio_only`], or a
/// `Config::nowait_max` below the page size. The page-cache fast path would
/// stall the polling thread itself.
pub struct StalledRead {
    stall: Stall,
    read: std::pin::Pin<Box<aiofs::ops::ReadAt<StallBuf>>>,
}

impl StalledRead {
    /// Stalls a read of `file` at `pos` (where the file has data) on its own
    /// descriptor (`set_fd_pool(1)`: no duplicate), and returns once the glibc
    /// worker is stuck in it. `None` (saying why on stderr) without
    /// `userfaultfd`.
    ///
    /// # Panics
    ///
    /// If the read finishes at once (no data at `pos`?), or no worker reaches
    /// the page within 10 s.
    pub async fn start(file: &aiofs::File, pos: u64) -> Option<StalledRead> {
        file.set_fd_pool(1);
        let stall = Stall::new(1)?;
        let mut read = Box::pin(file.read_at(stall.buf(0), pos));
        assert!(
            futures::poll!(&mut read).is_pending(),
            "the stalling read finished at once"
        );
        stall.wait_stalled(1);
        Some(StalledRead { stall, read })
    }

    /// Lets the read go on (the requests behind it run) and collects it.
    ///
    /// # Panics
    ///
    /// If the read fails or takes over 10 s.
    pub async fn release(self) {
        self.stall.release();
        let (res, _) = bounded("the stalled read, released", 10, self.read).await;
        res.expect("the stalled read");
    }
}

// The mapping is never unmapped: a stalled read may still write into it when
// a failing test drops its `Stall` (closing the descriptor lets the read go on).

/// A page of a [`Stall`], as a read buffer.
#[derive(Debug)]
pub struct StallBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

// SAFETY: the page is never unmapped and only this buffer hands it out.
unsafe impl Send for StallBuf {}

// SAFETY: `ptr` points to `cap` bytes of a mapping that is never unmapped or
// moved; the first `len` are initialised (`set_init` is called after a read
// wrote them).
unsafe impl aiofs::buf::IoBuf for StallBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as for `IoBuf`; the mapping is writable.
unsafe impl aiofs::buf::IoBufMut for StallBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        assert!(pos <= self.cap);
        self.len = pos;
    }
}

impl StallBuf {
    /// The bytes read.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `ptr` are initialised (see `IoBuf`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
