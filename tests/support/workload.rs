//! A mixed, checked I/O load, for tests that need requests in flight while
//! something else happens (signals arriving, a child forked): positioned reads
//! and writes, vectored requests, batches, syncs, metadata, and files opened,
//! read as a stream and closed. Every result is checked; an error of kind
//! `Interrupted` is named as such.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use aiofs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Rng, open_rw, pattern_bytes};

/// Each file's length.
pub const FILE_LEN: u64 = 1 << 20;
/// Writes go from here to the end, of the bytes already there: the content
/// never changes.
pub const SCRATCH: u64 = 768 << 10;
const MAX_LEN: u64 = 16 << 10;

/// The files of a load and what they hold.
#[derive(Debug)]
pub struct Files {
    pub files: Vec<Arc<File>>,
    pub paths: Vec<std::path::PathBuf>,
    pub content: Vec<Vec<u8>>,
}

impl Files {
    /// Creates `n` files of `FILE_LEN` bytes under `dir` (file `k` holds the
    /// pattern from `k << 40`) and opens them read-write.
    pub async fn create(dir: &Path, n: u64) -> Arc<Files> {
        let mut files = Vec::new();
        let mut paths = Vec::new();
        let mut content = Vec::new();
        for k in 0..n {
            let path = dir.join(format!("load{k}"));
            let data = pattern_bytes(k << 40, FILE_LEN as usize);
            std::fs::write(&path, &data).expect("write a load file");
            files.push(Arc::new(open_rw(&path).await));
            paths.push(path);
            content.push(data);
        }
        Arc::new(Files {
            files,
            paths,
            content,
        })
    }
}

/// Describes an error, naming `Interrupted` loudly.
fn describe(what: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::Interrupted {
        format!("{what}: ErrorKind::Interrupted returned by aiofs: {e}")
    } else {
        format!("{what}: {e} ({:?})", e.kind())
    }
}

/// One random request, checked. `Err` describes what was wrong.
pub async fn request(f: &Files, rng: &mut Rng) -> Result<(), String> {
    let k = rng.below(f.files.len() as u64) as usize;
    let (file, content) = (&f.files[k], &f.content[k]);
    let len = 1 + rng.below(MAX_LEN) as usize;
    match rng.below(64) {
        0..=35 => {
            let pos = rng.below(FILE_LEN + 4096);
            let what = format!("read_at({len}, {pos}) on file {k}");
            let (res, buf) = file.read_at(Vec::with_capacity(len), pos).await;
            let n = res.map_err(|e| describe(&what, &e))?;
            let avail = FILE_LEN.saturating_sub(pos) as usize;
            if n > len.min(avail) || buf.len() != n || (avail > 0 && n == 0) {
                return Err(format!("{what}: count {n}"));
            }
            if n > 0 && buf[..] != content[pos as usize..pos as usize + n] {
                return Err(format!("{what}: wrong data"));
            }
        }
        36..=43 => {
            let pos = rng.below(FILE_LEN - len as u64 + 1);
            let what = format!("read_exact_at({len}, {pos}) on file {k}");
            let (res, buf) = file.read_exact_at(vec![0u8; len], pos).await;
            res.map_err(|e| describe(&what, &e))?;
            if buf[..] != content[pos as usize..pos as usize + len] {
                return Err(format!("{what}: wrong data"));
            }
        }
        44..=51 => {
            let pos = SCRATCH + rng.below(FILE_LEN - SCRATCH - len as u64 + 1);
            let what = format!("write_all_at({len}, {pos}) on file {k}");
            let data = content[pos as usize..pos as usize + len].to_vec();
            let (res, _) = file.write_all_at(data, pos).await;
            res.map_err(|e| describe(&what, &e))?;
        }
        52..=54 => {
            let pos = rng.below(FILE_LEN - 3 * 4096);
            let what = format!("readv_at(3 x 4096, {pos}) on file {k}");
            let bufs = (0..3).map(|_| Vec::with_capacity(4096)).collect();
            let (res, bufs) = file.readv_at(bufs, pos).await;
            let n = res.map_err(|e| describe(&what, &e))?;
            let got: Vec<u8> = bufs.concat();
            if n != got.len() || n == 0 || got[..] != content[pos as usize..pos as usize + n] {
                return Err(format!("{what}: count {n} or wrong data"));
            }
        }
        55..=57 => {
            let mut batch = aiofs::Batch::new();
            let mut want = Vec::new();
            for _ in 0..4 {
                let j = rng.below(f.files.len() as u64) as usize;
                let pos = rng.below(FILE_LEN - 4096);
                batch.read_at(&f.files[j], Vec::with_capacity(4096), pos);
                want.push((j, pos));
            }
            for ((res, buf), (j, pos)) in batch.submit().await.into_iter().zip(want) {
                let what = format!("batch read_at(4096, {pos}) on file {j}");
                let n = res.map_err(|e| describe(&what, &e))?;
                if n != 4096 || buf[..] != f.content[j][pos as usize..pos as usize + n] {
                    return Err(format!("{what}: count {n} or wrong data"));
                }
            }
        }
        58..=59 => {
            let what = format!("metadata of file {k}");
            let len = file
                .metadata()
                .await
                .map_err(|e| describe(&what, &e))?
                .len();
            if len != FILE_LEN {
                return Err(format!("{what}: length {len}"));
            }
        }
        60 => {
            let what = format!("sync_data of file {k}");
            file.sync_data().await.map_err(|e| describe(&what, &e))?;
        }
        _ => {
            // Open, two sequential stream reads (the second starts read-ahead),
            // close.
            let pos = rng.below(FILE_LEN - 2 * MAX_LEN);
            let what = format!("stream read at {pos} of file {k}");
            let mut stream = File::open(&f.paths[k])
                .await
                .map_err(|e| describe(&what, &e))?;
            stream
                .seek(std::io::SeekFrom::Start(pos))
                .await
                .map_err(|e| describe(&what, &e))?;
            let mut buf = vec![0u8; 2 * len];
            stream
                .read_exact(&mut buf[..len])
                .await
                .map_err(|e| describe(&what, &e))?;
            stream
                .read_exact(&mut buf[len..])
                .await
                .map_err(|e| describe(&what, &e))?;
            if buf[..] != content[pos as usize..pos as usize + 2 * len] {
                return Err(format!("{what}: wrong data"));
            }
        }
    }
    Ok(())
}

/// Counts of a load's run.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub errors: std::sync::Mutex<Vec<String>>,
}

/// Runs `tasks` tasks, each keeping `depth` requests going at once, until
/// `stop` is set (checked between rounds). Must run on a Tokio runtime.
pub fn spawn(
    files: &Arc<Files>,
    tasks: u64,
    depth: u64,
    seed: u64,
    stop: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            let (files, stop, progress) = (files.clone(), stop.clone(), progress.clone());
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Relaxed) {
                    let all = (0..depth).map(|i| {
                        let files = &files;
                        let mut rng = Rng::new(seed ^ (t << 48) ^ (round << 20) ^ i);
                        async move { request(files, &mut rng).await }
                    });
                    for res in futures::future::join_all(all).await {
                        if let Err(e) = res {
                            progress.errors.lock().unwrap().push(e);
                        }
                    }
                    progress.requests.fetch_add(depth, Relaxed);
                    round += 1;
                }
            })
        })
        .collect()
}
