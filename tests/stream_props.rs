//! Property tests of the stream side of `aiofs::File` (`AsyncRead`, `AsyncWrite`,
//! `AsyncSeek`, with `set_len`, `sync_data` and positioned `write_at` mixed in):
//! random sequences of operations run on an `aiofs::File` and on a
//! `std::fs::File` side by side, each on its own temporary file with the same
//! initial contents. After every operation the results must agree (bytes read,
//! positions, error kinds); at the end, the two files must hold the same bytes.
//!
//! The sequences run with a few `max_buf_size` values so that writes cross the
//! write-behind chunks and sequential reads open the read-ahead window (up to
//! 4 x 1 MiB). Each case runs on its own current-thread Tokio runtime.
//!
//! `PROPTEST_CASES` sets the number of cases per test (default 64).

use std::fmt::Debug;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The largest single read or write of a sequence.
const MAX_IO: usize = 300 * KIB;
/// No single operation may take longer than this (a hang fails the case).
const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// One step of a sequence. Positions and lengths that depend on the file are
/// given as fractions of the current length (of the `std` file, the model), so
/// that shrinking keeps them meaningful.
#[derive(Debug, Clone)]
enum Op {
    /// One `write` call (`all == false`: its count may be short, and `std` then
    /// writes the same prefix) or `write_all`.
    Write {
        len: usize,
        seed: u64,
        all: bool,
    },
    /// One `read` call into a buffer of `len` bytes (a short count is legal).
    Read {
        len: usize,
    },
    /// `read` calls until `len` bytes or end of file.
    ReadFull {
        len: usize,
    },
    /// `read_to_end`.
    ReadToEnd,
    Seek(SeekOp),
    /// `seek(SeekFrom::Current(0))`.
    Tell,
    Flush,
    /// `set_len(len * frac / u16::MAX + extra)` through `&File`.
    SetLen {
        frac: u16,
        extra: u32,
    },
    SyncData,
    /// A positioned `write_at` through `&File` at `(len + 64 KiB) * frac /
    /// u16::MAX + extra`, after a flush of the stream (see `apply`).
    WriteAt {
        len: usize,
        seed: u64,
        frac: u16,
        extra: u32,
    },
}

#[derive(Debug, Clone)]
enum SeekOp {
    /// `Start(len * frac / u16::MAX + extra)`.
    Start {
        frac: u16,
        extra: u32,
    },
    Current(i64),
    /// `End(extra - len * frac / u16::MAX)`: negative past the start fails.
    End {
        frac: u16,
        extra: i64,
    },
}

/// `len` bytes from a xorshift generator seeded with `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sizes of reads and writes: small ones, any up to 300 KiB, and sizes around
/// the write-behind chunks (4 KiB, 64 KiB) and read chunks (16 KiB .. 256 KiB).
fn io_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 0usize..=64,
        4 => 0usize..=MAX_IO,
        3 => (
            prop::sample::select(vec![
                4 * KIB,
                8 * KIB,
                16 * KIB,
                32 * KIB,
                64 * KIB,
                128 * KIB,
                256 * KIB,
            ]),
            -2i64..=2
        )
            .prop_map(|(base, d)| (base as i64 + d) as usize),
    ]
}

/// An extra offset, mostly 0, sometimes past the end of file.
fn extra() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(0u32),
        1 => 0u32..=4096,
        1 => 0u32..=(MIB as u32),
    ]
}

fn seek_op() -> impl Strategy<Value = SeekOp> {
    prop_oneof![
        (any::<u16>(), extra()).prop_map(|(frac, extra)| SeekOp::Start { frac, extra }),
        prop_oneof![
            Just(0i64),
            -(MAX_IO as i64)..=(MAX_IO as i64),
            -(8 * MIB as i64)..=(8 * MIB as i64),
        ]
        .prop_map(SeekOp::Current),
        (
            any::<u16>(),
            prop_oneof![Just(0i64), -(64 * KIB as i64)..=(MAX_IO as i64)]
        )
            .prop_map(|(frac, extra)| SeekOp::End { frac, extra }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (io_len(), any::<u64>(), any::<bool>())
            .prop_map(|(len, seed, all)| Op::Write { len, seed, all }),
        5 => io_len().prop_map(|len| Op::Read { len }),
        3 => io_len().prop_map(|len| Op::ReadFull { len }),
        1 => Just(Op::ReadToEnd),
        4 => seek_op().prop_map(Op::Seek),
        1 => Just(Op::Tell),
        2 => Just(Op::Flush),
        1 => (any::<u16>(), extra()).prop_map(|(frac, extra)| Op::SetLen { frac, extra }),
        1 => Just(Op::SyncData),
        2 => (io_len(), any::<u64>(), any::<u16>(), extra())
            .prop_map(|(len, seed, frac, extra)| Op::WriteAt { len, seed, frac, extra }),
    ]
}

/// The initial contents: empty, small, or a few MiB (so that sequential reads
/// cross the read-ahead window).
fn init_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        2 => 0usize..=(64 * KIB),
        3 => MIB..=(6 * MIB + 12_345),
    ]
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        // No regression files in the source tree.
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    }
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

/// An unexpected I/O error of the model or of the set-up.
fn io_fail(what: &str, e: io::Error) -> TestCaseError {
    fail(format!("{what}: unexpected error {e} ({:?})", e.kind()))
}

/// Both results `Ok` and equal, or both `Err` of the same kind.
fn same<T: PartialEq + Debug>(
    what: &str,
    aio: &io::Result<T>,
    std: &io::Result<T>,
) -> Result<(), TestCaseError> {
    match (aio, std) {
        (Ok(a), Ok(s)) if a == s => Ok(()),
        (Err(a), Err(s)) if a.kind() == s.kind() => Ok(()),
        _ => Err(fail(format!(
            "{what}: aiofs gave {aio:?}, std gave {std:?}"
        ))),
    }
}

/// Equal byte strings, or a failure naming the lengths and the first difference
/// (not megabytes of bytes).
fn same_bytes(what: &str, aio: &[u8], std: &[u8]) -> Result<(), TestCaseError> {
    if aio == std {
        return Ok(());
    }
    let first = aio.iter().zip(std).position(|(a, s)| a != s);
    Err(fail(format!(
        "{what}: aiofs gave {} bytes, std {} bytes; first difference at {first:?}",
        aio.len(),
        std.len()
    )))
}

fn std_len(std: &std::fs::File) -> Result<u64, TestCaseError> {
    std.metadata()
        .map(|m| m.len())
        .map_err(|e| io_fail("std metadata", e))
}

fn scaled(len: u64, frac: u16) -> u64 {
    len * u64::from(frac) / u64::from(u16::MAX)
}

/// Reads with single calls until `len` bytes or a read of 0.
async fn aio_read_full(file: &mut aiofs::File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = file.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

fn std_read_full(file: &mut std::fs::File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = file.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// Applies `op` to both files and compares what they report.
async fn apply(
    aio: &mut aiofs::File,
    std: &mut std::fs::File,
    op: &Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Write { len, seed, all } => {
            let data = bytes(*len, *seed);
            if *all {
                let a = aio.write_all(&data).await;
                let s = std.write_all(&data);
                same("write_all", &a, &s)?;
            } else {
                let n = aio
                    .write(&data)
                    .await
                    .map_err(|e| io_fail("aiofs write", e))?;
                prop_assert!(n <= *len, "write of {} bytes reported {}", len, n);
                prop_assert!(
                    *len == 0 || n > 0,
                    "write of {} bytes reported 0 (WriteZero)",
                    len
                );
                std.write_all(&data[..n])
                    .map_err(|e| io_fail("std write_all", e))?;
            }
        }
        Op::Read { len } => {
            let mut buf = vec![0; *len];
            let k = aio
                .read(&mut buf)
                .await
                .map_err(|e| io_fail("aiofs read", e))?;
            let pos = std
                .stream_position()
                .map_err(|e| io_fail("std stream_position", e))?;
            let remaining = std_len(std)?.saturating_sub(pos);
            prop_assert!(k <= *len, "read into {} bytes reported {}", len, k);
            prop_assert!(
                k as u64 <= remaining,
                "read reported {} bytes at {} with {} left in the file",
                k,
                pos,
                remaining
            );
            prop_assert!(
                *len == 0 || remaining == 0 || k > 0,
                "read of {} bytes at {} returned 0 (end of file) with {} bytes left",
                len,
                pos,
                remaining
            );
            let mut want = vec![0; k];
            std.read_exact(&mut want)
                .map_err(|e| io_fail("std read_exact", e))?;
            same_bytes("read", &buf[..k], &want)?;
        }
        Op::ReadFull { len } => {
            let a = aio_read_full(aio, *len).await;
            let s = std_read_full(std, *len);
            match (&a, &s) {
                (Ok(a), Ok(s)) => same_bytes("read_full", a, s)?,
                _ => same("read_full", &a.map(|v| v.len()), &s.map(|v| v.len()))?,
            }
        }
        Op::ReadToEnd => {
            let mut a = Vec::new();
            let mut s = Vec::new();
            let ra = aio.read_to_end(&mut a).await;
            let rs = std.read_to_end(&mut s);
            same("read_to_end", &ra, &rs)?;
            same_bytes("read_to_end", &a, &s)?;
        }
        Op::Seek(target) => {
            let len = std_len(std)?;
            let target = match *target {
                SeekOp::Start { frac, extra } => {
                    SeekFrom::Start(scaled(len, frac) + u64::from(extra))
                }
                SeekOp::Current(d) => SeekFrom::Current(d),
                SeekOp::End { frac, extra } => SeekFrom::End(extra - scaled(len, frac) as i64),
            };
            let a = aio.seek(target).await;
            let s = std.seek(target);
            same(&format!("seek({target:?})"), &a, &s)?;
        }
        Op::Tell => {
            let a = aio.stream_position().await;
            let s = std.stream_position();
            same("stream_position", &a, &s)?;
        }
        Op::Flush => {
            let a = aio.flush().await;
            let s = std.flush();
            same("flush", &a, &s)?;
        }
        Op::SetLen { frac, extra } => {
            let size = scaled(std_len(std)?, *frac) + u64::from(*extra);
            let a = aio.set_len(size).await;
            let s = std.set_len(size);
            same(&format!("set_len({size})"), &a, &s)?;
        }
        Op::SyncData => {
            let a = aio.sync_data().await;
            let s = std.sync_data();
            same("sync_data", &a, &s)?;
        }
        Op::WriteAt {
            len,
            seed,
            frac,
            extra,
        } => {
            // Bytes accepted by `AsyncWrite` but not yet submitted would land
            // after this positioned write (write-behind); flushing first gives
            // the order `std` has.
            aio.flush()
                .await
                .map_err(|e| io_fail("aiofs flush before write_at", e))?;
            let pos = scaled(std_len(std)? + 64 * KIB as u64, *frac) + u64::from(*extra);
            let data = bytes(*len, *seed);
            let file: &aiofs::File = aio;
            let (res, back) = file.write_at(data.clone(), pos).await;
            let n = res.map_err(|e| io_fail("aiofs write_at", e))?;
            prop_assert_eq!(back, data.clone(), "write_at gave another buffer back");
            prop_assert!(n <= *len, "write_at of {} bytes reported {}", len, n);
            prop_assert!(*len == 0 || n > 0, "write_at of {} bytes reported 0", len);
            std.write_all_at(&data[..n], pos)
                .map_err(|e| io_fail("std write_all_at", e))?;
        }
    }
    Ok(())
}

/// One case: `ops` on both files, then the final comparison.
fn run_case(
    max_buf_size: Option<usize>,
    init: (usize, u64),
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| io_fail("tempdir", e))?;
    let aio_path = dir.path().join("aio");
    let std_path = dir.path().join("std");
    let initial = bytes(init.0, init.1);
    std::fs::write(&aio_path, &initial).map_err(|e| io_fail("write initial", e))?;
    std::fs::write(&std_path, &initial).map_err(|e| io_fail("write initial", e))?;
    let mut std = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&std_path)
        .map_err(|e| io_fail("open std", e))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| io_fail("runtime", e))?;
    rt.block_on(async {
        let mut aio = aiofs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&aio_path)
            .await
            .map_err(|e| io_fail("open aiofs", e))?;
        if let Some(size) = max_buf_size {
            aio.set_max_buf_size(size);
        }
        for (i, op) in ops.iter().enumerate() {
            match tokio::time::timeout(OP_TIMEOUT, apply(&mut aio, &mut std, op)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(fail(format!("op #{i} {op:?}: {e}"))),
                Err(_) => {
                    return Err(fail(format!(
                        "op #{i} {op:?}: no answer within {OP_TIMEOUT:?}"
                    )));
                }
            }
        }
        let flushed = tokio::time::timeout(OP_TIMEOUT, aio.flush())
            .await
            .map_err(|_| fail("final flush hangs"))?;
        flushed.map_err(|e| io_fail("final flush", e))?;

        let a = aio.stream_position().await;
        let s = std.stream_position();
        same("final stream_position", &a, &s)?;
        let a = aio.metadata().await.map(|m| m.len());
        let s = std.metadata().map(|m| m.len());
        same("final metadata().len()", &a, &s)?;

        let a = std::fs::read(&aio_path).map_err(|e| io_fail("read aio file", e))?;
        let s = std::fs::read(&std_path).map_err(|e| io_fail("read std file", e))?;
        same_bytes("final contents", &a, &s)?;
        drop(aio);
        Ok(())
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..48)
}

proptest! {
    #![proptest_config(config())]

    /// Write-behind chunks of 4 KiB: most writes cross several chunks.
    #[test]
    fn stream_matches_std_max_buf_4k(
        init_len in init_len(),
        init_seed in any::<u64>(),
        ops in ops(),
    ) {
        run_case(Some(4096), (init_len, init_seed), &ops)?;
    }

    /// Write-behind chunks of 64 KiB.
    #[test]
    fn stream_matches_std_max_buf_64k(
        init_len in init_len(),
        init_seed in any::<u64>(),
        ops in ops(),
    ) {
        run_case(Some(64 * KIB), (init_len, init_seed), &ops)?;
    }

    /// The default `max_buf_size` (2 MiB): read chunks of up to 1 MiB.
    #[test]
    fn stream_matches_std_default_max_buf(
        init_len in init_len(),
        init_seed in any::<u64>(),
        ops in ops(),
    ) {
        run_case(None, (init_len, init_seed), &ops)?;
    }
}

/// A seek to a position `std` refuses (past `i64::MAX`, where `lseek` fails
/// with `EINVAL`) must fail the same way, and leave the position unchanged.
#[test]
fn seek_past_i64_max_matches_std() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aio_path = dir.path().join("aio");
    let std_path = dir.path().join("std");
    std::fs::write(&aio_path, b"0123456789").expect("write");
    std::fs::write(&std_path, b"0123456789").expect("write");
    let mut std = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&std_path)
        .expect("open std");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut aio = aiofs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&aio_path)
            .await
            .expect("open aiofs");
        let mut mismatches = Vec::new();
        for target in [
            SeekFrom::Start(4),
            SeekFrom::Start(i64::MAX as u64 + 1),
            SeekFrom::Start(u64::MAX),
            SeekFrom::Current(i64::MAX),
            SeekFrom::End(i64::MAX),
            SeekFrom::Current(-5),
            SeekFrom::Current(0),
        ] {
            let a = aio.seek(target).await;
            let s = std.seek(target);
            let agree = match (&a, &s) {
                (Ok(a), Ok(s)) => a == s,
                (Err(a), Err(s)) => a.kind() == s.kind(),
                _ => false,
            };
            if !agree {
                mismatches.push(format!("seek({target:?}): aiofs {a:?}, std {s:?}"));
            }
            // Resynchronise so that one mismatch does not cascade.
            let p = std.stream_position().expect("std position");
            aio.seek(SeekFrom::Start(p)).await.expect("aiofs resync");
        }
        assert!(
            mismatches.is_empty(),
            "aiofs and std disagree:\n{}",
            mismatches.join("\n")
        );
    });
}
