//! Whole files. `small`: thousands of files of 1-64 KiB (sizes fixed per
//! index), each read whole once, in a random order, by QD tasks (task `t`
//! reads the order's files `t`, `t + QD`, ...), cold (every file evicted
//! right before the run) or cached (every file read right before), through
//! `read` or `File::open` + `AsyncReadExt::read_to_end`. `whole`: `copy`,
//! `read` and `write` of large files, one call on a worker.
//!
//! Every small file's length and first and last 8 bytes are checked, and the
//! whole content of each task's first and last file; `whole` checks the
//! length and 17 places (both ends included).

use super::sample::{Done, Lat, Phase, measured, measured_std, run_tasks};
use super::seq::{new_file_path, pattern_data};
use super::util::{
    KIB, Rng, checkpoints, evict, fill_pattern, joined, permutation, sync_fs, verify_file_sampled,
    verify_pattern, warm,
};
use super::{Backend, Case, Sample, Spec, Workload};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The size of small file `i`: 1-64 KiB.
fn small_size(i: u64) -> u64 {
    KIB as u64 + Rng::new(i).next_u64() % (63 * KIB as u64 + 1)
}

fn small_path(dir: &Path, i: u64) -> PathBuf {
    dir.join(format!("{i:05}"))
}

/// Makes (once) `count` small files of the pattern in `dir`: kept when every
/// file has its size. Whether they were made.
pub(super) fn make_small_files(dir: &Path, count: u64) -> io::Result<bool> {
    let kept = |i| fs::metadata(small_path(dir, i)).is_ok_and(|m| m.len() == small_size(i));
    if (0..count).all(kept) {
        return Ok(false);
    }
    fs::create_dir_all(dir)?;
    let mut data = vec![0u8; 64 * KIB];
    fill_pattern(&mut data, 0);
    for i in 0..count {
        fs::write(small_path(dir, i), &data[..small_size(i) as usize])?;
    }
    // Written back now, not under the measurements.
    sync_fs(dir).map(|()| true)
}

/// How a small file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// The crate's `read(path)`.
    Read,
    /// `File::open` + `read_to_end`.
    Open,
}

/// A row's way to read a whole file.
#[derive(Debug, Clone, Copy)]
enum FileReader {
    Aiofs(Api),
    TokioFs(Api),
    /// The std call in one `spawn_blocking` task.
    Blocking(Api),
    Std(Api),
}

async fn read_to_end<R: AsyncRead + Unpin>(mut file: R) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    file.read_to_end(&mut v).await.map(|_| v)
}

fn std_read(api: Api, path: &Path) -> io::Result<Vec<u8>> {
    match api {
        Api::Read => fs::read(path),
        Api::Open => {
            let mut v = Vec::new();
            fs::File::open(path)?.read_to_end(&mut v).map(|_| v)
        }
    }
}

impl FileReader {
    fn of(spec: &Spec) -> io::Result<FileReader> {
        let api = match spec.cell.case {
            Case::OpenCold | Case::OpenCached => Api::Open,
            _ => Api::Read,
        };
        Ok(match spec.backend {
            b if b.is_aiofs() => FileReader::Aiofs(api),
            Backend::TokioFs | Backend::TokioFsUring => FileReader::TokioFs(api),
            Backend::SpawnBlocking => FileReader::Blocking(api),
            Backend::Std => FileReader::Std(api),
            _ => return Err(super::sample::unsupported(spec)),
        })
    }

    async fn read(self, path: PathBuf) -> io::Result<Vec<u8>> {
        match self {
            FileReader::Aiofs(Api::Read) => aiofs::read(path).await,
            FileReader::Aiofs(Api::Open) => read_to_end(aiofs::File::open(path).await?).await,
            FileReader::TokioFs(Api::Read) => tokio::fs::read(path).await,
            FileReader::TokioFs(Api::Open) => read_to_end(tokio::fs::File::open(path).await?).await,
            FileReader::Blocking(api) => {
                joined(tokio::task::spawn_blocking(move || std_read(api, &path)).await)?
            }
            FileReader::Std(api) => std_read(api, &path),
        }
    }
}

pub(super) fn sample(spec: &Spec) -> io::Result<Sample> {
    let reader = FileReader::of(spec);
    match (spec.cell.workload, spec.cell.case) {
        (Workload::Small, _) => small(spec, reader?),
        (Workload::Whole, Case::Read) => {
            let (reader, path, what) = (reader?, spec.input.clone(), spec.what());
            match spec.backend {
                Backend::Std => measured_std(spec, || {
                    futures::executor::block_on(read_whole(reader, path, what))
                }),
                _ => measured(spec, async { Ok(()) }, |()| read_whole(reader, path, what)),
            }
        }
        (Workload::Whole, case) => copy_or_write(spec, case),
        _ => Err(super::sample::unsupported(spec)),
    }
}

/// `whole read`: the bytes read, checked at 17 places.
async fn read_whole(reader: FileReader, path: PathBuf, what: String) -> io::Result<u64> {
    let v = reader.read(path).await?;
    for pos in checkpoints(v.len() as u64) {
        let end = (pos as usize + 4 * KIB).min(v.len());
        verify_pattern(&v[pos as usize..end], pos, &what)?;
    }
    Ok(v.len() as u64)
}

/// `whole copy` (of the input into a new file) and `whole write` (of the
/// pattern into a new file), then the new file checked.
fn copy_or_write(spec: &Spec, case: Case) -> io::Result<Sample> {
    let (src, dst) = (spec.input.clone(), new_file_path(spec));
    let data = pattern_data(spec.size as usize);
    let d = dst.clone();
    let s = match (spec.backend, case) {
        (Backend::Std, Case::Copy) => measured_std(spec, || fs::copy(&src, &d)),
        (Backend::Std, _) => measured_std(spec, || fs::write(&d, data).map(|()| spec.size)),
        (b, Case::Copy) if b.is_aiofs() => {
            measured(spec, async { Ok(()) }, |()| aiofs::copy(src, d))
        }
        (b, _) if b.is_aiofs() => measured(spec, async { Ok(()) }, |()| async move {
            aiofs::write(d, data).await.map(|()| data.len() as u64)
        }),
        (_, Case::Copy) => measured(spec, async { Ok(()) }, |()| tokio::fs::copy(src, d)),
        _ => measured(spec, async { Ok(()) }, |()| async move {
            tokio::fs::write(d, data).await.map(|()| data.len() as u64)
        }),
    }?;
    verify_file_sampled(&dst, spec.size, &spec.what())?;
    fs::remove_file(&dst)?;
    Ok(s)
}

/// One pass over small files: the files (path, size) in their order, how
/// many of them the pass reads, and its tasks.
#[derive(Clone)]
struct Pass {
    files: Arc<[(PathBuf, u64)]>,
    count: usize,
    qd: usize,
    what: Arc<str>,
}

fn small(spec: &Spec, reader: FileReader) -> io::Result<Sample> {
    let files: Arc<[(PathBuf, u64)]> = permutation(spec.size as usize, spec.seed)
        .into_iter()
        .map(|i| (small_path(&spec.input, i.into()), small_size(i.into())))
        .collect();
    let qd = if spec.backend == Backend::Std {
        1
    } else {
        spec.cell.qd
    };
    let pass = |phase| Pass {
        files: Arc::clone(&files),
        count: if phase == Phase::Warm {
            qd
        } else {
            files.len()
        },
        qd,
        what: spec.what().into(),
    };
    let cold = spec.cell.case.cold();
    let prepare = || {
        let prep = if cold { evict } else { warm };
        files.iter().try_for_each(|(path, _)| prep(path))
    };
    run_tasks(
        spec,
        async || Ok(vec![reader; qd]),
        prepare,
        pass,
        file_task,
    )
}

/// One task's files: each read whole and checked.
async fn file_task(p: Pass, t: usize, reader: FileReader) -> io::Result<Done> {
    let mut lat = Lat::new(true);
    let mut done = Done::default();
    let mine: Vec<usize> = (t..p.count).step_by(p.qd).collect();
    for (k, &i) in mine.iter().enumerate() {
        let (path, size) = &p.files[i];
        let t0 = lat.start();
        let v = reader.read(path.clone()).await?;
        lat.stop(t0, Instant::now());
        let len = v.len() as u64;
        if len != *size {
            return Err(io::Error::other(format!(
                "{}: {} has {size} bytes, read {len}",
                p.what,
                path.display()
            )));
        }
        if k == 0 || k + 1 == mine.len() {
            verify_pattern(&v, 0, &p.what)?;
        } else {
            let end = v.len() - 8;
            verify_pattern(&v[..8], 0, &p.what)?;
            verify_pattern(&v[end..], end as u64, &p.what)?;
        }
        done.ops += 1;
        done.bytes += len;
    }
    done.lat = lat;
    Ok(done)
}
