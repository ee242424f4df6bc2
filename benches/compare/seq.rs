//! Sequential workloads: `seq-copy` and `seq-read-at` read the whole
//! page-cached file (`tokio::io::copy` into a checking sink; positioned 1 MiB
//! reads, [`SEQ_DEPTH`] in flight), `write-stream` and `write-at` write a new
//! file in 1 MiB chunks (`AsyncWrite`; `write_all_at`, [`SEQ_DEPTH`] in flight)
//! and `sync_all` it. The async rows run as one task on a worker, as in an
//! application; opening and creating files is not timed, `sync_all` is.
//!
//! A read checks its length and the bytes at 17 offsets (both ends
//! included); a written file is checked afterwards (its length, and 4 KiB at
//! 17 offsets).

use super::sample::{measured, measured_std, unsupported};
use super::util::{checkpoints, fill_pattern, joined, verify_file_sampled, verify_pattern};
use super::{BLOCK, Backend, CHUNK, SEQ_DEPTH, Sample, Spec, Workload};
use std::fs;
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::ops::Deref;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub(super) fn sample(spec: &Spec) -> io::Result<Sample> {
    let size = spec.size as usize;
    let what: &'static str = spec.what().leak();
    let path = spec.input.clone();
    match (spec.cell.workload, spec.backend) {
        (Workload::SeqCopy, b) if b.is_aiofs() => measured(spec, aiofs::File::open(path), |f| {
            copy_checked(f, size, what)
        }),
        (Workload::SeqCopy, Backend::TokioFs | Backend::TokioFsUring) => {
            measured(spec, tokio::fs::File::open(path), |f| {
                copy_checked(f, size, what)
            })
        }
        (Workload::SeqReadAt, b) if b.is_aiofs() => {
            measured(spec, aiofs::File::open(path), move |f| {
                let bufs = (0..SEQ_DEPTH).map(|_| Vec::with_capacity(CHUNK)).collect();
                read_window(size, bufs, what, move |buf, pos| {
                    let read = f.read_at(buf, pos);
                    async move { with_pos(read.await, pos) }
                })
            })
        }
        (Workload::SeqReadAt, Backend::TokioFs | Backend::TokioFsUring) => {
            measured(spec, tokio::fs::File::open(path), move |mut f| {
                read_loop(size, what, async move |buf| f.read(buf).await)
            })
        }
        (Workload::SeqReadAt, Backend::SpawnBlocking) => measured(
            spec,
            async { fs::File::open(path).map(Arc::new) },
            move |f| {
                let bufs = (0..SEQ_DEPTH).map(|_| vec![0u8; CHUNK]).collect();
                read_window(size, bufs, what, move |mut buf: Vec<u8>, pos| {
                    let f = Arc::clone(&f);
                    let read = tokio::task::spawn_blocking(move || (f.read_at(&mut buf, pos), buf));
                    async move { with_pos(joined(read.await)?, pos) }
                })
            },
        ),
        (Workload::SeqCopy | Workload::SeqReadAt, Backend::Std) => {
            let mut f = fs::File::open(&spec.input)?;
            measured_std(spec, || {
                futures::executor::block_on(read_loop(size, what, async |buf| f.read(buf)))
            })
        }
        (Workload::WriteStream | Workload::WriteAt, _) => write_sample(spec),
        #[cfg(target_os = "linux")]
        (Workload::SeqReadAt, Backend::TokioUring) => super::uring::seq_read_at(spec, what),
        _ => Err(unsupported(spec)),
    }
}

fn with_pos<B>((res, buf): (io::Result<usize>, B), pos: u64) -> io::Result<(usize, B, u64)> {
    res.map(|n| (n, buf, pos))
}

// ---------------------------------------------------------------- reads

/// The [`checkpoints`] of a file a sequential read checks, and which of them
/// were seen.
struct Checkpoints {
    points: Vec<u64>,
    seen: Vec<bool>,
}

impl Checkpoints {
    fn new(size: usize) -> Checkpoints {
        let points = checkpoints(size as u64);
        let seen = vec![false; points.len()];
        Checkpoints { points, seen }
    }

    /// Checks up to 4 KiB of `buf` (the file's bytes at `pos`) from every
    /// checkpoint it holds.
    fn see(&mut self, pos: u64, buf: &[u8], what: &str) -> io::Result<()> {
        let end = pos + buf.len() as u64;
        let first = self.points.partition_point(|&p| p < pos);
        for i in first..self.points.len() {
            let point = self.points[i];
            if point >= end {
                break;
            }
            let from = (point - pos) as usize;
            let to = (from + BLOCK).min(buf.len());
            verify_pattern(&buf[from..to], point, what)?;
            self.seen[i] = true;
        }
        Ok(())
    }

    fn finish(&self, what: &str) -> io::Result<()> {
        match self.seen.iter().position(|s| !s) {
            None => Ok(()),
            Some(i) => Err(io::Error::other(format!(
                "{what}: the bytes at offset {} were never read",
                self.points[i]
            ))),
        }
    }
}

/// `tokio::io::sink()` that also checks the bytes at the [`Checkpoints`]
/// (a few compares per write otherwise).
struct CheckSink {
    pos: u64,
    checks: Checkpoints,
    what: &'static str,
}

impl AsyncWrite for CheckSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.checks.see(me.pos, buf, me.what)?;
        me.pos += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `tokio::io::copy` of a whole file into a [`CheckSink`]: the bytes copied.
async fn copy_checked<R: AsyncRead + Unpin>(
    mut file: R,
    size: usize,
    what: &'static str,
) -> io::Result<u64> {
    let mut sink = CheckSink {
        pos: 0,
        checks: Checkpoints::new(size),
        what,
    };
    let n = tokio::io::copy(&mut file, &mut sink).await?;
    sink.checks.finish(what)?;
    Ok(n)
}

/// A read loop with a 1 MiB buffer (`read` fills it from the file's cursor):
/// the bytes read.
async fn read_loop(
    size: usize,
    what: &str,
    mut read: impl AsyncFnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<u64> {
    let mut buf = vec![1u8; CHUNK];
    let mut checks = Checkpoints::new(size);
    let mut pos = 0u64;
    loop {
        match read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                checks.see(pos, &buf[..n], what)?;
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    checks.finish(what)?;
    Ok(pos)
}

/// Positioned reads of a whole file, 1 MiB each, one per buffer in flight;
/// `submit(buf, pos)` starts one. The bytes read.
pub(super) async fn read_window<B, F, Fut>(
    size: usize,
    mut bufs: Vec<B>,
    what: &str,
    mut submit: F,
) -> io::Result<u64>
where
    B: Deref<Target = [u8]>,
    F: FnMut(B, u64) -> Fut,
    Fut: Future<Output = io::Result<(usize, B, u64)>>,
{
    let mut checks = Checkpoints::new(size);
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    let mut done = 0u64;
    loop {
        while next < size as u64
            && let Some(buf) = bufs.pop()
        {
            in_flight.push(submit(buf, next));
            next += CHUNK as u64;
        }
        let Some(res) = in_flight.next().await else {
            break;
        };
        let (n, buf, pos) = res?;
        let want = CHUNK.min(size - pos as usize);
        if n != want {
            return Err(io::Error::other(format!(
                "{what}: short read at {pos}: {n} bytes, want {want}"
            )));
        }
        checks.see(pos, &buf[..n], what)?;
        done += n as u64;
        bufs.push(buf);
    }
    checks.finish(what)?;
    Ok(done)
}

// ---------------------------------------------------------------- writes

/// The pattern from offset 0, at least `len` bytes, made once per process.
pub(super) fn pattern_data(len: usize) -> &'static [u8] {
    static DATA: Mutex<&'static [u8]> = Mutex::new(&[]);
    let mut data = DATA.lock().unwrap_or_else(PoisonError::into_inner);
    if data.len() < len {
        let mut v = vec![0u8; len.next_multiple_of(8)].into_boxed_slice();
        fill_pattern(&mut v, 0);
        *data = Box::leak(v);
    }
    &data[..len]
}

/// Positioned writes of `data` from offset 0, 1 MiB each, `depth` in flight;
/// `submit(chunk, pos)` starts one.
pub(super) async fn write_window<F, Fut>(
    data: &'static [u8],
    depth: usize,
    mut submit: F,
) -> io::Result<()>
where
    F: FnMut(&'static [u8], u64) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    let mut in_flight = FuturesUnordered::new();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        if in_flight.len() >= depth
            && let Some(res) = in_flight.next().await
        {
            res?;
        }
        in_flight.push(submit(chunk, (i * CHUNK) as u64));
    }
    while let Some(res) = in_flight.next().await {
        res?;
    }
    Ok(())
}

/// `write_all` of each chunk through `AsyncWrite`, `flush`, then `sync`.
async fn stream_write<W: AsyncWrite + Unpin>(
    mut file: W,
    data: &'static [u8],
    sync: impl AsyncFnOnce(W) -> io::Result<()>,
) -> io::Result<u64> {
    for chunk in data.chunks(CHUNK) {
        file.write_all(chunk).await?;
    }
    file.flush().await?;
    sync(file).await?;
    Ok(data.len() as u64)
}

/// A new file in the scratch directory, for this sample.
pub(super) fn new_file_path(spec: &Spec) -> PathBuf {
    let key = spec.backend.key().replace('/', "-");
    let name = format!(
        "{}-{key}-{}-{}",
        spec.cell.workload.key(),
        std::process::id(),
        spec.seed
    );
    spec.scratch.join(name)
}

fn write_sample(spec: &Spec) -> io::Result<Sample> {
    let data = pattern_data(spec.size as usize);
    let path = new_file_path(spec);
    let stream = spec.cell.workload == Workload::WriteStream;
    let s = match spec.backend {
        b if b.is_aiofs() && stream => measured(spec, aiofs::File::create_new(&path), |f| {
            stream_write(f, data, async |f| f.sync_all().await)
        }),
        b if b.is_aiofs() => measured(spec, aiofs::File::create_new(&path), |f| async move {
            write_window(data, SEQ_DEPTH, |chunk, pos| {
                let write = f.write_all_at(chunk, pos);
                async move { write.await.0 }
            })
            .await?;
            f.sync_all().await.map(|()| data.len() as u64)
        }),
        Backend::TokioFs if stream => measured(spec, tokio::fs::File::create_new(&path), |f| {
            stream_write(f, data, async |f| f.sync_all().await)
        }),
        Backend::SpawnBlocking if !stream => {
            let f = Arc::new(fs::File::create_new(&path)?);
            measured(spec, async { Ok(f) }, |f| async move {
                write_window(data, SEQ_DEPTH, |chunk, pos| {
                    let f = Arc::clone(&f);
                    let write = tokio::task::spawn_blocking(move || f.write_all_at(chunk, pos));
                    async move { joined(write.await)? }
                })
                .await?;
                joined(tokio::task::spawn_blocking(move || f.sync_all()).await)??;
                Ok(data.len() as u64)
            })
        }
        #[cfg(target_os = "linux")]
        Backend::TokioUring if !stream => super::uring::write_at(spec, &path, data),
        Backend::Std => {
            let mut f = fs::File::create_new(&path)?;
            measured_std(spec, || {
                data.chunks(CHUNK)
                    .try_for_each(|chunk| f.write_all(chunk))?;
                f.sync_all().map(|()| data.len() as u64)
            })
        }
        _ => Err(unsupported(spec)),
    }?;
    verify_file_sampled(&path, spec.size, &spec.what())?;
    fs::remove_file(&path)?;
    Ok(s)
}
