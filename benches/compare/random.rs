//! Random 4 KiB reads: `cached` and `latency` (a page-cached file), `direct`
//! (`O_DIRECT`), `cold` (the file evicted right before the timed run, each
//! page read at most once).
//!
//! The pages are read in a random order (a permutation, per seed): task `t`
//! of QD reads the order's entries `t`, `t + QD`, ... until the run's time is
//! up (going round again for cached reads; a cold run that runs out of pages
//! fails). Every read must return a full block; the first and the last read
//! of every task are checked against the pattern.

use super::sample::{Done, Lat, Phase, run_tasks};
use super::util::{evict, joined, permutation, verify_pattern, warm};
use super::{BLOCK, Backend, Sample, Spec, Workload};
use std::fs;
use std::io::{self, SeekFrom};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aiofs::buf::AlignedBuf;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::Mutex;

/// `O_DIRECT` buffer alignment: a page covers any logical block size.
pub(super) const ALIGN: usize = 4096;

/// One pass: the tasks' shares of the page order, and when it ends.
#[derive(Clone)]
pub(super) struct Pass {
    pub(super) qd: usize,
    order: Arc<[u32]>,
    /// Where the pass starts in `order`.
    start: usize,
    /// Go round `order` again (cached reads); else running out is an error.
    wrap: bool,
    deadline: Instant,
    /// Time every read (not for cached reads: two clock reads per read
    /// would show at a million reads a second).
    record: bool,
    what: Arc<str>,
}

impl Pass {
    pub(super) fn new(spec: &Spec, order: &Arc<[u32]>, phase: Phase) -> Pass {
        let w = spec.cell.workload;
        Pass {
            qd: if spec.backend == Backend::Std {
                1
            } else {
                spec.cell.qd
            },
            order: Arc::clone(order),
            start: if phase == Phase::Warm {
                order.len() / 2
            } else {
                0
            },
            wrap: w != Workload::Cold,
            deadline: phase.deadline(spec),
            record: phase == Phase::Timed && w != Workload::Cached,
            what: spec.what().into(),
        }
    }

    /// Task `t`'s `k`-th offset; `None` when the order ran out.
    fn offset(&self, t: usize, k: u64) -> Option<u64> {
        let i = self.start + t + k as usize * self.qd;
        let i = if self.wrap { i % self.order.len() } else { i };
        self.order
            .get(i)
            .map(|&page| u64::from(page) * BLOCK as u64)
    }
}

/// A task's way to read 4 KiB at an offset, with its buffer back.
pub(super) trait ReadAt {
    async fn read_at(&mut self, buf: AlignedBuf, pos: u64) -> io::Result<(usize, AlignedBuf)>;
}

/// The readers of the rows on a Tokio runtime, and std's.
#[derive(Clone)]
enum Reader {
    Aiofs(Arc<aiofs::File>),
    /// `spawn_blocking` + `pread`.
    Blocking(Arc<fs::File>),
    /// A `tokio::fs::File` of its own (it has one cursor): `seek` + `read_exact`.
    TokioFs(Arc<Mutex<tokio::fs::File>>),
    /// `pread` on this thread.
    Std(Arc<fs::File>),
}

fn pread(file: &fs::File, mut buf: AlignedBuf, pos: u64) -> io::Result<(usize, AlignedBuf)> {
    buf.resize(BLOCK, 0);
    file.read_at(&mut buf, pos).map(|n| (n, buf))
}

impl ReadAt for Reader {
    async fn read_at(&mut self, mut buf: AlignedBuf, pos: u64) -> io::Result<(usize, AlignedBuf)> {
        match self {
            Reader::Aiofs(f) => {
                let (res, buf) = f.read_at(buf, pos).await;
                res.map(|n| (n, buf))
            }
            Reader::Blocking(f) => {
                let f = Arc::clone(f);
                joined(tokio::task::spawn_blocking(move || pread(&f, buf, pos)).await)?
            }
            Reader::TokioFs(f) => {
                let mut f = f.lock().await;
                buf.resize(BLOCK, 0);
                f.seek(SeekFrom::Start(pos)).await?;
                f.read_exact(&mut buf).await.map(|_| (BLOCK, buf))
            }
            Reader::Std(f) => pread(f, buf, pos),
        }
    }
}

/// One task's reads until the deadline: the count and the latencies.
pub(super) async fn read_task(p: Pass, t: usize, mut r: impl ReadAt) -> io::Result<Done> {
    let mut buf = AlignedBuf::new(ALIGN, BLOCK);
    let mut lat = Lat::new(p.record);
    let mut count = 0u64;
    loop {
        let pos = p.offset(t, count).ok_or_else(|| {
            io::Error::other(format!(
                "{}: every page of the file was read before the time was up (a larger file or a shorter run)",
                p.what
            ))
        })?;
        let t0 = lat.start();
        let (n, b) = r.read_at(buf, pos).await?;
        let t1 = Instant::now();
        lat.stop(t0, t1);
        buf = b;
        if n != BLOCK || buf.len() != BLOCK {
            return Err(io::Error::other(format!(
                "{}: short read at {pos}: {n} bytes (buffer length {})",
                p.what,
                buf.len()
            )));
        }
        count += 1;
        if count == 1 || t1 >= p.deadline {
            verify_pattern(&buf, pos, &p.what)?;
        }
        if t1 >= p.deadline {
            let bytes = count * BLOCK as u64;
            return Ok(Done {
                ops: count,
                bytes,
                lat,
            });
        }
    }
}

pub(super) fn open_std(path: &Path, direct: bool) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(path)
}

/// The readers of QD tasks (opened untimed).
async fn readers(spec: &Spec, direct: bool) -> io::Result<Vec<Reader>> {
    let path = &spec.input;
    let qd = spec.cell.qd;
    Ok(match spec.backend {
        Backend::Aiofs { pool, .. } => {
            let mut opts = aiofs::OpenOptions::new();
            opts.read(true)
                .custom_flags(if direct { libc::O_DIRECT } else { 0 });
            let file = opts.open(path).await?;
            if let Some(n) = pool {
                file.set_fd_pool(n);
            }
            vec![Reader::Aiofs(Arc::new(file)); qd]
        }
        Backend::SpawnBlocking => vec![Reader::Blocking(Arc::new(open_std(path, direct)?)); qd],
        Backend::TokioFs | Backend::TokioFsUring if !direct => {
            let mut v = Vec::with_capacity(qd);
            for _ in 0..qd {
                let f = tokio::fs::File::open(path).await?;
                v.push(Reader::TokioFs(Arc::new(Mutex::new(f))));
            }
            v
        }
        Backend::Std => vec![Reader::Std(Arc::new(open_std(path, direct)?))],
        _ => return Err(super::sample::unsupported(spec)),
    })
}

pub(super) fn sample(spec: &Spec) -> io::Result<Sample> {
    let w = spec.cell.workload;
    let direct = w == Workload::Direct;
    let order: Arc<[u32]> = permutation((spec.size / BLOCK as u64) as usize, spec.seed).into();
    let prepare = || match w {
        Workload::Cold => evict(&spec.input),
        Workload::Direct => Ok(()),
        _ => warm(&spec.input),
    };
    let pass = |phase| Pass::new(spec, &order, phase);
    match spec.backend {
        #[cfg(target_os = "linux")]
        Backend::TokioUring => super::uring::random(spec, direct, prepare, pass),
        _ => run_tasks(
            spec,
            async || readers(spec, direct).await,
            prepare,
            pass,
            read_task,
        ),
    }
}
