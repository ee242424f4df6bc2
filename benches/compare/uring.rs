//! The tokio-uring rows (Linux): tokio-uring's own (current_thread) runtime,
//! tasks sharing an `Rc<File>`, the way that crate is used.

use super::random::{self, ReadAt};
use super::sample::{Done, Measure, Phase, tasks, two_passes};
use super::seq::{read_window, write_window};
use super::wal::{self, Append};
use super::{CHUNK, SEQ_DEPTH, Sample, Spec};
use std::fs;
use std::io;
use std::path::Path;
use std::rc::Rc;

use aiofs::buf::AlignedBuf;
use tokio_uring::fs::File;

/// `AlignedBuf` for tokio-uring's buffer traits (for `O_DIRECT` reads).
struct UringBuf(AlignedBuf);

// SAFETY: the allocation never moves (the struct only holds its pointer);
// `len <= capacity` bytes are initialised.
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

/// A task's share of the file.
struct Shared(Rc<File>);

impl ReadAt for Shared {
    async fn read_at(&mut self, buf: AlignedBuf, pos: u64) -> io::Result<(usize, AlignedBuf)> {
        let (res, buf) = self.0.read_at(UringBuf(buf), pos).await;
        res.map(|n| (n, buf.0))
    }
}

impl Append for Shared {
    async fn append(&mut self, rec: Vec<u8>, pos: u64) -> io::Result<Vec<u8>> {
        let (res, rec) = self.0.write_all_at(rec, pos).await;
        res?;
        self.0.sync_data().await.map(|()| rec)
    }
}

/// The two passes of QD tasks on a file shared by `Rc`.
fn on_tasks<P: Clone + 'static, Fut>(
    spec: &Spec,
    std: fs::File,
    prepare: impl FnOnce() -> io::Result<()>,
    pass: impl Fn(Phase) -> P,
    task: impl Fn(P, usize, Shared) -> Fut,
) -> io::Result<Sample>
where
    Fut: Future<Output = io::Result<Done>> + 'static,
{
    tokio_uring::start(async {
        let file = Rc::new(File::from_std(std));
        two_passes(spec, prepare, async |ph| {
            let p = pass(ph);
            let spawn = |t| tokio_uring::spawn(task(p.clone(), t, Shared(Rc::clone(&file))));
            tasks(spec.cell.qd, spawn).await
        })
        .await
    })
}

pub(super) fn random(
    spec: &Spec,
    direct: bool,
    prepare: impl FnOnce() -> io::Result<()>,
    pass: impl Fn(Phase) -> random::Pass,
) -> io::Result<Sample> {
    let std = random::open_std(&spec.input, direct)?;
    on_tasks(spec, std, prepare, pass, random::read_task)
}

pub(super) fn wal(
    spec: &Spec,
    path: &Path,
    pass: impl Fn(Phase) -> wal::Pass,
) -> io::Result<Sample> {
    let std = fs::File::create_new(path)?;
    on_tasks(spec, std, || Ok(()), pass, wal::append_task)
}

pub(super) fn seq_read_at(spec: &Spec, what: &str) -> io::Result<Sample> {
    let std = fs::File::open(&spec.input)?;
    let size = spec.size as usize;
    super::util::warm(&spec.input)?;
    tokio_uring::start(async {
        let file = File::from_std(std);
        let bufs: Vec<Vec<u8>> = (0..SEQ_DEPTH).map(|_| Vec::with_capacity(CHUNK)).collect();
        let m = Measure::start(spec);
        let n = read_window(size, bufs, what, |buf, pos| {
            let read = file.read_at(buf, pos);
            async move {
                let (res, buf) = read.await;
                res.map(|n| (n, buf, pos))
            }
        })
        .await?;
        m.stop(Done {
            ops: n / CHUNK as u64,
            bytes: n,
            ..Done::default()
        })
    })
}

pub(super) fn write_at(spec: &Spec, path: &Path, data: &'static [u8]) -> io::Result<Sample> {
    let std = fs::File::create_new(path)?;
    tokio_uring::start(async {
        let file = File::from_std(std);
        let m = Measure::start(spec);
        write_window(data, SEQ_DEPTH, |chunk, pos| {
            let write = file.write_all_at(chunk, pos);
            async move { write.await.0 }
        })
        .await?;
        file.sync_all().await?;
        m.stop(Done {
            ops: data.len().div_ceil(CHUNK) as u64,
            bytes: data.len() as u64,
            ..Done::default()
        })
    })
}
