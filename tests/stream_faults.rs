//! The stream side of `aiofs::File` (`AsyncRead`/`AsyncWrite`/`AsyncSeek`) under
//! conditions a plain sequence of calls does not show: a file that grows under
//! a reader, `O_APPEND` (one and two writers), a full disk (a small tmpfs,
//! mounted when running as root), and a `File` dropped with unflushed writes.
//!
//! Every test holds `serial()`: some wait for `aiofs::stats().in_flight` to be
//! 0, which another test's requests would hold up, and the disk-full tests
//! mount file systems.

// `serial()` is held across awaits on purpose: it keeps the tests of this binary
// one at a time, and no other task ever takes it.
#![allow(clippy::await_holding_lock)]

use std::io::{SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

mod support;

use support::{Tmpfs, pattern_bytes, serial};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Fails with the lengths and the first difference, not megabytes of bytes.
#[track_caller]
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(g, w)| g != w);
        panic!(
            "{what}: got {} bytes, expected {} bytes; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Waits (polling, at most 10 s) until the driver holds no request.
async fn wait_idle() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = aiofs::stats();
        if stats.in_flight == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "requests still in flight after 10 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `fut`'s output, or a panic naming `what` if it takes more than 30 s (a hang
/// fails the test instead of blocking the run).
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no answer within 30 s"),
    }
}

/// Reads with single `read` calls of `chunk` bytes until one returns 0.
async fn read_until_eof(file: &mut aiofs::File, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        let n = within("read", file.read(&mut buf)).await.expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn append_std(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(data).expect("append");
}

// ----- a growing file -----

/// A reader at end of file gets 0, then exactly the data appended since, round
/// after round; the appends come from `std` and from another `aiofs::File`.
#[tokio::test]
async fn growing_file_reader_gets_exactly_the_appended_data() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grow");
    std::fs::write(&path, pattern_bytes(0, 1000)).expect("write");

    let mut reader = aiofs::File::open(&path).await.expect("open reader");
    let mut writer = aiofs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .expect("open writer");
    assert_same_bytes(
        "initial",
        &read_until_eof(&mut reader, 300).await,
        &pattern_bytes(0, 1000),
    );
    let mut len = 1000u64;
    for (round, add) in [1usize, 10, 4095, 4097, 70_000, 1, 1_500_000, 3, 0, 16 * KIB]
        .into_iter()
        .enumerate()
    {
        let data = pattern_bytes(len, add);
        if round % 2 == 0 {
            append_std(&path, &data);
        } else {
            writer.write_all(&data).await.expect("aiofs append");
            writer.flush().await.expect("aiofs flush");
        }
        len += add as u64;
        let mut got = Vec::new();
        // The reader's buffer is smaller than most appends, and larger than some.
        let chunk = [7, 64 * KIB, 1000][round % 3];
        got.extend(read_until_eof(&mut reader, chunk).await);
        assert_same_bytes(&format!("round {round} (+{add})"), &got, &data);
        // At the end again: 0, twice.
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).await.expect("read at end"), 0);
        assert_eq!(reader.read(&mut buf).await.expect("read at end"), 0);
        assert_eq!(
            reader.stream_position().await.expect("position"),
            len,
            "round {round}"
        );
    }
}

/// As above after a sequential read of a multi-MiB file, so that the read-ahead
/// window is at its widest when the reader reaches the end.
#[tokio::test]
async fn growing_file_after_sequential_multi_mib_read() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grow");
    let first = 6 * MIB + 12_345;
    std::fs::write(&path, pattern_bytes(0, first)).expect("write");

    for chunk in [64 * KIB, 1 << 20] {
        let mut reader = aiofs::File::open(&path).await.expect("open reader");
        let mut len = std::fs::metadata(&path).expect("metadata").len();
        let all = read_until_eof(&mut reader, chunk).await;
        assert_same_bytes("sequential read", &all, &pattern_bytes(0, len as usize));
        for (round, add) in [1usize, 3 * MIB + 7, 100, 2 * MIB].into_iter().enumerate() {
            let data = pattern_bytes(len, add);
            append_std(&path, &data);
            len += add as u64;
            let got = read_until_eof(&mut reader, chunk).await;
            assert_same_bytes(
                &format!("chunk {chunk}, round {round} (+{add})"),
                &got,
                &data,
            );
        }
        drop(reader);
    }
    wait_idle().await;
}

/// Data appended while the read-ahead window is open and its reads past the old
/// end of file have already finished: the reader must still read through the
/// new data without a premature 0 (a read that starts after the append must
/// see it, as with `std::fs::File`; "end of file is never cached").
#[tokio::test]
async fn growing_file_append_while_read_ahead_is_open() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grow");
    let first = 6 * MIB;
    let added = 200 * KIB;
    std::fs::write(&path, pattern_bytes(0, first)).expect("write");

    let mut reader = aiofs::File::open(&path).await.expect("open reader");
    // Sequential 1 MiB reads: the window widens to 4 reads of 1 MiB, which run
    // past the end of file.
    let mut got = vec![0; 5 * MIB];
    reader.read_exact(&mut got).await.expect("read 5 MiB");
    // Let the reads in flight finish (those past the end find nothing).
    wait_idle().await;
    append_std(&path, &pattern_bytes(first as u64, added));

    got.extend(read_until_eof(&mut reader, MIB).await);
    assert_same_bytes(
        "read through the appended data",
        &got,
        &pattern_bytes(0, first + added),
    );
}

// ----- O_APPEND -----

fn line(tag: &str, i: usize) -> String {
    format!("{tag} {i:05} {}\n", "x".repeat(i % 37))
}

/// 10,000 numbered lines through `AsyncWrite` on one `O_APPEND` file, flushed
/// now and then: the file holds exactly the lines, in order, after what it held
/// before; the stream position is the file length.
#[tokio::test]
async fn append_many_lines_in_order() {
    let _serial = serial();
    for max_buf_size in [None, Some(4096), Some(100)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, b"header\n").expect("write");
        let mut file = aiofs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .expect("open");
        if let Some(size) = max_buf_size {
            file.set_max_buf_size(size);
        }
        let mut expected = b"header\n".to_vec();
        for i in 0..10_000 {
            let l = line("line", i);
            file.write_all(l.as_bytes()).await.expect("write");
            expected.extend_from_slice(l.as_bytes());
            if i % 997 == 996 {
                file.flush().await.expect("flush");
            }
            if i % 2500 == 1234 {
                // Unflushed appends count: the position is the end of all of them.
                let pos = file.seek(SeekFrom::Current(0)).await.expect("seek");
                assert_eq!(pos, expected.len() as u64, "{max_buf_size:?}, line {i}");
            }
        }
        let pos = file.seek(SeekFrom::Current(0)).await.expect("seek");
        assert_eq!(pos, expected.len() as u64, "{max_buf_size:?}");
        file.flush().await.expect("flush");
        let len = std::fs::metadata(&path).expect("metadata").len();
        assert_eq!(len, expected.len() as u64, "{max_buf_size:?}");
        assert_eq!(
            file.stream_position().await.expect("position"),
            len,
            "{max_buf_size:?}"
        );
        let content = std::fs::read(&path).expect("read");
        assert_same_bytes(&format!("{max_buf_size:?}"), &content, &expected);
        drop(file);
    }
    wait_idle().await;
}

/// An `O_APPEND` file opened for reading too: after appends the stream is at
/// the end (a read gives 0); a seek back reads everything written.
#[tokio::test]
async fn append_then_read_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    std::fs::write(&path, b"old\n").expect("write");
    let mut file = aiofs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .await
        .expect("open");
    file.set_max_buf_size(4096);
    let mut expected = b"old\n".to_vec();
    for i in 0..2000 {
        let l = line("rw", i);
        file.write_all(l.as_bytes()).await.expect("write");
        expected.extend_from_slice(l.as_bytes());
    }
    let mut buf = [0u8; 64];
    assert_eq!(file.read(&mut buf).await.expect("read at end"), 0);
    assert_eq!(
        file.stream_position().await.expect("position"),
        expected.len() as u64
    );
    // A write after a seek still appends.
    file.seek(SeekFrom::Start(0)).await.expect("seek");
    file.write_all(b"tail\n").await.expect("write");
    expected.extend_from_slice(b"tail\n");
    file.seek(SeekFrom::Start(0)).await.expect("seek");
    let mut content = Vec::new();
    file.read_to_end(&mut content).await.expect("read_to_end");
    assert_same_bytes("read back", &content, &expected);
}

/// Two `O_APPEND` files on the same path, writing in turn with a flush after
/// each write: the lines alternate, none lost or overwritten. Then both write
/// without flushing in between: every line is there, whole, each writer's in
/// its own order.
#[tokio::test]
async fn two_append_writers() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let open = || async {
        aiofs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await
            .expect("open")
    };
    let mut a = open().await;
    let mut b = open().await;
    a.set_max_buf_size(256);

    let mut expected = Vec::new();
    for i in 0..500 {
        for (tag, file) in [("a", &mut a), ("b", &mut b)] {
            let l = line(tag, i);
            file.write_all(l.as_bytes()).await.expect("write");
            file.flush().await.expect("flush");
            expected.extend_from_slice(l.as_bytes());
        }
    }
    let content = std::fs::read(&path).expect("read");
    assert_same_bytes("alternating with flushes", &content, &expected);

    // Without flushes in between: the order across writers is open, the lines
    // are not.
    for i in 500..2500 {
        a.write_all(line("a", i).as_bytes()).await.expect("write a");
        b.write_all(line("b", i).as_bytes()).await.expect("write b");
    }
    a.flush().await.expect("flush a");
    b.flush().await.expect("flush b");
    let content = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 5000, "line count");
    for tag in ["a", "b"] {
        let mine: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{tag} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let want: Vec<String> = (0..2500).map(|i| line(tag, i)).collect();
        assert_eq!(mine.len(), want.len(), "lines of {tag}");
        assert!(
            mine == want,
            "the lines of {tag} are not all there, in order"
        );
    }
}

// ----- disk full -----

fn is_enospc(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

/// Write-behind on a full disk: the error (`ENOSPC`) comes from a `write` or a
/// `flush`; a flush retried while the data does not fit fails again; every byte
/// acknowledged by a successful flush is in the file; once space is freed, a
/// retried flush succeeds and every accepted byte is in the file.
#[tokio::test]
async fn disk_full_write_behind_keeps_data_and_retries() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount("2m", "disk_full_write_behind_keeps_data_and_retries") else {
        return;
    };
    let filler = fs.join("filler");
    std::fs::write(&filler, vec![0xAAu8; MIB]).expect("write filler");
    let path = fs.join("data");
    {
        let mut file = aiofs::File::create(&path).await.expect("create");
        file.set_max_buf_size(64 * KIB);
        let total = 4 * MIB;
        let piece = 64 * KIB;
        let data = pattern_bytes(0, total);
        // Bytes `write` accepted, and bytes a successful flush acknowledged.
        let mut accepted = 0usize;
        let mut flushed = 0usize;
        let mut error = None;
        for (i, part) in data.chunks(piece).enumerate() {
            match within("write", file.write(part)).await {
                Ok(n) => {
                    assert!(n > 0 && n <= part.len(), "write reported {n}");
                    // A short count: send the rest with the next calls.
                    let mut done = n;
                    while done < part.len() && error.is_none() {
                        match within("write", file.write(&part[done..])).await {
                            Ok(n) => done += n,
                            Err(e) => error = Some(("write", e)),
                        }
                    }
                    accepted += done;
                }
                Err(e) => error = Some(("write", e)),
            }
            if error.is_some() {
                break;
            }
            if i % 4 == 3 {
                match within("flush", file.flush()).await {
                    Ok(()) => flushed = accepted,
                    Err(e) => error = Some(("flush", e)),
                }
            }
            if error.is_some() {
                break;
            }
        }
        let (what, e) = error.expect("4 MiB fit on a 2 MiB tmpfs holding 1 MiB");
        eprintln!(
            "disk full: {what} failed ({e}) with {accepted} bytes accepted, {flushed} flushed"
        );
        assert!(is_enospc(&e), "{what} failed with {e:?}, not ENOSPC");
        assert!(
            accepted < 2 * MIB,
            "{accepted} bytes accepted before an error: write-behind does not bound its data"
        );

        // While the data does not fit, a flush never reports success.
        for attempt in 0..3 {
            match within("flush", file.flush()).await {
                Ok(()) => panic!(
                    "flush #{attempt} reported success with {} of {accepted} accepted bytes in \
                     the file",
                    std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
                ),
                Err(e) => assert!(is_enospc(&e), "retried flush failed with {e:?}"),
            }
        }
        // What a successful flush acknowledged is in the file.
        let content = std::fs::read(&path).expect("read");
        assert!(
            content.len() >= flushed,
            "the file has {} bytes, {flushed} were acknowledged by a flush",
            content.len()
        );
        assert_same_bytes("acknowledged prefix", &content[..flushed], &data[..flushed]);
        assert!(
            content.len() <= accepted,
            "the file has {} bytes, more than the {accepted} accepted",
            content.len()
        );

        // Space again: the retried flush writes the rest.
        std::fs::remove_file(&filler).expect("remove filler");
        within("flush", file.flush())
            .await
            .expect("flush after freeing space");
        let content = std::fs::read(&path).expect("read");
        assert_same_bytes("after freeing space", &content, &data[..accepted]);
        assert_eq!(
            file.stream_position().await.expect("position"),
            accepted as u64
        );
        // And the stream goes on.
        file.write_all(b"more").await.expect("write after recovery");
        within("flush", file.flush())
            .await
            .expect("flush after recovery");
        let content = std::fs::read(&path).expect("read");
        assert_eq!(content.len(), accepted + 4);
        assert_eq!(&content[accepted..], b"more");
    }
    wait_idle().await;
}

/// `aiofs::write` of more than fits fails with `ENOSPC`.
#[tokio::test]
async fn disk_full_aiofs_write_reports_enospc() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount("2m", "disk_full_aiofs_write_reports_enospc") else {
        return;
    };
    let path = fs.join("big");
    let err = aiofs::write(&path, pattern_bytes(0, 3 * MIB))
        .await
        .expect_err("3 MiB written to a 2 MiB tmpfs");
    assert!(
        is_enospc(&err),
        "aiofs::write failed with {err:?}, not ENOSPC"
    );
    // What fits does go in: the file is a prefix of the data.
    let content = std::fs::read(&path).expect("read");
    assert!(!content.is_empty() && content.len() < 3 * MIB);
    assert_same_bytes("prefix", &content, &pattern_bytes(0, content.len()));
    std::fs::remove_file(&path).expect("remove");
    // Now it fits.
    aiofs::write(&path, pattern_bytes(0, MIB))
        .await
        .expect("1 MiB fits");
    assert_same_bytes(
        "after space freed",
        &std::fs::read(&path).expect("read"),
        &pattern_bytes(0, MIB),
    );
    wait_idle().await;
}

/// A positioned `write_all_at` past the space fails with `ENOSPC`; the driver
/// keeps serving: a read on another file, and reads and writes on the full one.
#[tokio::test]
async fn disk_full_write_all_at_then_driver_keeps_serving() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount("2m", "disk_full_write_all_at_then_driver_keeps_serving") else {
        return;
    };
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_path = other_dir.path().join("other");
    std::fs::write(&other_path, pattern_bytes(0, 100_000)).expect("write other");
    let other = aiofs::File::open(&other_path).await.expect("open other");

    let path = fs.join("full");
    let file = aiofs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
        .expect("create");
    let (res, buf) = file.write_all_at(pattern_bytes(0, 3 * MIB), 0).await;
    let err = res.expect_err("3 MiB written to a 2 MiB tmpfs");
    assert!(
        is_enospc(&err),
        "write_all_at failed with {err:?}, not ENOSPC"
    );
    assert_eq!(buf.len(), 3 * MIB, "the buffer comes back whole");
    // Past the end of what fits, at a distant offset too.
    let (res, _) = file
        .write_all_at(vec![1u8; 64 * KIB], 10 * MIB as u64)
        .await;
    let err = res.expect_err("a write at 10 MiB on a full tmpfs");
    assert!(
        is_enospc(&err),
        "write_all_at failed with {err:?}, not ENOSPC"
    );

    // The driver goes on serving.
    let (res, buf) = other.read_at(Vec::with_capacity(1000), 5000).await;
    assert_eq!(res.expect("read_at on another file"), 1000);
    assert_same_bytes("read_at on another file", &buf, &pattern_bytes(5000, 1000));
    let (res, buf) = file.read_at(Vec::with_capacity(4096), 4096).await;
    assert_eq!(res.expect("read_at on the full file"), 4096);
    assert_same_bytes("read_at on the full file", &buf, &pattern_bytes(4096, 4096));
    // Overwriting allocated space needs no new space.
    let (res, _) = file.write_all_at(vec![7u8; 4096], 0).await;
    res.expect("overwrite in place on a full tmpfs");
    let (res, buf) = file.read_exact_at(vec![0u8; 4096], 0).await;
    res.expect("read back");
    assert!(buf.iter().all(|&b| b == 7), "overwritten bytes read back");
    drop(file);
    drop(other);
    wait_idle().await;
}

// ----- drop without flush -----

/// A `File` dropped with writes accepted but not flushed (some still buffered,
/// some in flight): they still go out, and land in the file.
#[tokio::test]
async fn drop_without_flush_writes_in_background() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, max_buf_size, len) in [
        ("small", None, 100usize),
        ("buffered-and-in-flight", Some(64 * KIB), 3 * MIB + 1234),
        ("default-chunks", None, 5 * MIB + 17),
    ] {
        let path = dir.path().join(name);
        let data = pattern_bytes(0, len);
        let mut file = aiofs::File::create(&path).await.expect("create");
        if let Some(size) = max_buf_size {
            file.set_max_buf_size(size);
        }
        file.write_all(&data).await.expect("write_all");
        let before = aiofs::stats();
        drop(file);
        wait_idle().await;
        let after = aiofs::stats();
        let content = std::fs::read(&path).expect("read");
        assert_same_bytes(
            &format!(
                "{name} (requests cancelled by the drop: {}; submitted: {})",
                after.cancelled - before.cancelled,
                after.submitted - before.submitted
            ),
            &content,
            &data,
        );
    }
}

/// The same after a seek: the write-behind of two separate ranges goes out.
#[tokio::test]
async fn drop_without_flush_after_seek() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seek");
    let mut file = aiofs::File::create(&path).await.expect("create");
    file.set_max_buf_size(8 * KIB);
    let a = pattern_bytes(0, 50_000);
    let b = pattern_bytes(1_000_000, 30_000);
    file.write_all(&a).await.expect("write a");
    file.seek(SeekFrom::Start(1_000_000)).await.expect("seek");
    file.write_all(&b).await.expect("write b");
    let before = aiofs::stats();
    drop(file);
    wait_idle().await;
    let after = aiofs::stats();
    let content = std::fs::read(&path).expect("read");
    let mut want = vec![0u8; 1_030_000];
    want[..50_000].copy_from_slice(&a);
    want[1_000_000..].copy_from_slice(&b);
    assert_same_bytes(
        &format!(
            "two ranges (requests cancelled by the drop: {})",
            after.cancelled - before.cancelled
        ),
        &content,
        &want,
    );
}

/// The same with the writes certain to be queued when the `File` is dropped:
/// glibc runs one request per descriptor at a time, and a large positioned
/// write on the same `File` is still running ahead of them. Once everything
/// settles, the stream's writes must be in the file.
#[tokio::test]
async fn drop_without_flush_behind_a_running_write() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, max_buf_size, len) in [
        ("buffered-only", None, 100usize),
        ("chunks-and-buffer", Some(64 * KIB), 200 * KIB + 17),
    ] {
        let path = dir.path().join(name);
        let mut file = aiofs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .expect("create");
        if let Some(size) = max_buf_size {
            file.set_max_buf_size(size);
        }
        // 32 MiB at 64 MiB: tens of milliseconds of copying, ahead in the queue.
        let far = 64 * MIB as u64;
        let mut slow = Box::pin(file.write_all_at(vec![0x5Au8; 32 * MIB], far));
        std::future::poll_fn(|cx| {
            // One poll submits it.
            let _ = slow.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        let data = pattern_bytes(0, len);
        file.write_all(&data).await.expect("write_all");
        let before = aiofs::stats();
        drop(file);
        let (res, _) = within("large write_all_at", slow).await;
        res.expect("large write_all_at");
        wait_idle().await;
        let after = aiofs::stats();

        let std = std::fs::File::open(&path).expect("open");
        let size = std.metadata().expect("metadata").len();
        assert_eq!(size, far + 32 * MIB as u64, "{name}: file size");
        let mut got = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&std, &mut got, 0).expect("read");
        assert_same_bytes(
            &format!(
                "{name} (requests cancelled by the drop: {})",
                after.cancelled - before.cancelled
            ),
            &got,
            &data,
        );
    }
}

/// A request's future, boxed: its result without the buffer.
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>>>>;

/// A `File` dropped with unflushed writes while the driver is at its in-flight
/// limit (the default is at most 1,024): the stream's writes must wait for a
/// place, and still go out once there is one.
#[tokio::test]
async fn drop_without_flush_while_the_driver_is_at_its_limit() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = aiofs::File::create(dir.path().join("busy"))
        .await
        .expect("create busy");
    // A 64 MiB write runs (tens of milliseconds) while 1,100 small writes queue
    // behind it on the same descriptor: more requests in flight than the limit.
    let big_len = 64 * MIB;
    let mut pending: Vec<Pending> = Vec::new();
    let big = busy.write_all_at(vec![0x5Au8; big_len], 0);
    pending.push(Box::pin(async move { big.await.0 }));
    for i in 0..1100u64 {
        let small = busy.write_at(vec![0xA5u8; 4096], big_len as u64 + i * 4096);
        pending.push(Box::pin(async move { small.await.0.map(drop) }));
    }
    std::future::poll_fn(|cx| {
        // One poll each: submitted, or waiting for a place.
        for f in pending.iter_mut() {
            let _ = f.as_mut().poll(cx);
        }
        std::task::Poll::Ready(())
    })
    .await;
    assert!(
        aiofs::stats().queued > 0,
        "precondition: the driver is not at its limit: {:?}",
        aiofs::stats()
    );

    let cases = [
        ("buffered-only", None, 100usize),
        ("chunks-and-buffer", Some(64 * KIB), 200 * KIB + 17),
    ];
    for (name, max_buf_size, len) in cases {
        let mut file = aiofs::File::create(dir.path().join(name))
            .await
            .expect("create");
        if let Some(size) = max_buf_size {
            file.set_max_buf_size(size);
        }
        file.write_all(&pattern_bytes(0, len))
            .await
            .expect("write_all");
        drop(file);
    }
    let queued_at_drop = aiofs::stats().queued;
    for f in pending {
        within("busy writes", f).await.expect("busy write");
    }
    wait_idle().await;
    let mut lost = Vec::new();
    for (name, _, len) in cases {
        let content = std::fs::read(dir.path().join(name)).expect("read");
        if content != pattern_bytes(0, len) {
            lost.push(format!(
                "{name}: {} of {len} bytes in the file",
                content.len()
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "writes of Files dropped unflushed at the limit lost ({queued_at_drop} requests \
         queued after the drops): {lost:?}"
    );
}
