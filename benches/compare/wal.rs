//! A write-ahead log: 4 KiB records appended to a new file, each durable
//! before it counts. `write_all_at` and `AsyncWrite`: one append at a time
//! (write, then `sync_data`); `group`: [`GROUP`] tasks, each reserving its
//! record's offset (an `AtomicU64`), writing it, then awaiting `sync_data` for
//! its own durability. The warm-up appends for its time to the same file, then
//! the timed run for its own. Each record holds the pattern at its offset; the
//! file is checked afterwards (its length: every reserved record, and 4 KiB at
//! 17 places).
//!
//! [`GROUP`]: super::GROUP

use super::sample::{Done, Lat, Phase, run_tasks};
use super::seq::new_file_path;
use super::util::{fill_pattern, joined, verify_file_sampled};
use super::{BLOCK, Backend, Case, Sample, Spec};
use std::fs;
use std::io::{self, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::sync::Mutex;

/// A phase's end, and the log's next free offset (shared by the appenders
/// and by both phases).
#[derive(Clone)]
pub(super) struct Pass {
    deadline: Instant,
    next: Arc<AtomicU64>,
}

/// A task's way to append a record at `pos` and make it durable.
pub(super) trait Append {
    async fn append(&mut self, rec: Vec<u8>, pos: u64) -> io::Result<Vec<u8>>;
}

/// The appenders of the rows on a Tokio runtime, and std's.
#[derive(Clone)]
enum Appender {
    /// `write_all_at` + `sync_data`.
    AiofsAt(Arc<aiofs::File>),
    /// `write_all` + `flush` + `sync_data` at the file's cursor.
    AiofsStream(Arc<Mutex<aiofs::File>>),
    /// `write_all` + `flush` + `sync_data` (after a `seek` to its record, in
    /// a group: a `File` per task).
    TokioFs(Arc<Mutex<tokio::fs::File>>, bool),
    /// `pwrite` + `fdatasync` in one `spawn_blocking` task.
    Blocking(Arc<fs::File>),
    /// `pwrite` (or `write` at the cursor) + `fdatasync` on this thread.
    Std(Arc<fs::File>, bool),
}

impl Append for Appender {
    async fn append(&mut self, rec: Vec<u8>, pos: u64) -> io::Result<Vec<u8>> {
        match self {
            Appender::AiofsAt(f) => {
                let (res, rec) = f.write_all_at(rec, pos).await;
                res?;
                f.sync_data().await.map(|()| rec)
            }
            Appender::AiofsStream(f) => {
                let mut f = f.lock().await;
                f.write_all(&rec).await?;
                f.flush().await?;
                f.sync_data().await.map(|()| rec)
            }
            Appender::TokioFs(f, seek) => {
                let mut f = f.lock().await;
                if *seek {
                    f.seek(SeekFrom::Start(pos)).await?;
                }
                f.write_all(&rec).await?;
                f.flush().await?;
                f.sync_data().await.map(|()| rec)
            }
            Appender::Blocking(f) => {
                let f = Arc::clone(f);
                let append = move || f.write_all_at(&rec, pos).and(f.sync_data()).map(|()| rec);
                joined(tokio::task::spawn_blocking(append).await)?
            }
            Appender::Std(f, at) => {
                if *at {
                    f.write_all_at(&rec, pos)?;
                } else {
                    (&**f).write_all(&rec)?;
                }
                f.sync_data().map(|()| rec)
            }
        }
    }
}

/// One task's appends until the deadline.
pub(super) async fn append_task(p: Pass, _t: usize, mut a: impl Append) -> io::Result<Done> {
    let mut rec = vec![0u8; BLOCK];
    let mut lat = Lat::new(true);
    let mut done = Done::default();
    loop {
        let pos = p.next.fetch_add(BLOCK as u64, Ordering::Relaxed);
        fill_pattern(&mut rec, pos);
        let t0 = lat.start();
        rec = a.append(rec, pos).await?;
        let t1 = Instant::now();
        lat.stop(t0, t1);
        done.ops += 1;
        done.bytes += BLOCK as u64;
        if t1 >= p.deadline {
            done.lat = lat;
            return Ok(done);
        }
    }
}

/// The appenders of the tasks (the file created untimed).
async fn appenders(spec: &Spec, path: &Path) -> io::Result<Vec<Appender>> {
    let (qd, at) = (spec.cell.qd, spec.cell.case == Case::At);
    let std = || fs::File::create_new(path).map(Arc::new);
    Ok(match spec.backend {
        b if b.is_aiofs() && spec.cell.case == Case::Stream => {
            let f = aiofs::File::create_new(path).await?;
            vec![Appender::AiofsStream(Arc::new(Mutex::new(f)))]
        }
        b if b.is_aiofs() => {
            vec![Appender::AiofsAt(Arc::new(aiofs::File::create_new(path).await?)); qd]
        }
        Backend::TokioFs | Backend::TokioFsUring => {
            let mut v = Vec::with_capacity(qd);
            for t in 0..qd {
                let mut opts = tokio::fs::OpenOptions::new();
                let f = opts.write(true).create_new(t == 0).open(path).await?;
                v.push(Appender::TokioFs(Arc::new(Mutex::new(f)), qd > 1));
            }
            v
        }
        Backend::SpawnBlocking => vec![Appender::Blocking(std()?); qd],
        Backend::Std => vec![Appender::Std(std()?, at)],
        _ => return Err(super::sample::unsupported(spec)),
    })
}

pub(super) fn sample(spec: &Spec) -> io::Result<Sample> {
    let path = new_file_path(spec);
    let next = Arc::new(AtomicU64::new(0));
    let pass = |phase: Phase| Pass {
        deadline: phase.deadline(spec),
        next: Arc::clone(&next),
    };
    let s = match spec.backend {
        #[cfg(target_os = "linux")]
        Backend::TokioUring => super::uring::wal(spec, &path, pass),
        _ => run_tasks(
            spec,
            async || appenders(spec, &path).await,
            || Ok(()),
            pass,
            append_task,
        ),
    }?;
    verify_file_sampled(&path, next.load(Ordering::Relaxed), &spec.what())?;
    fs::remove_file(&path)?;
    Ok(s)
}
