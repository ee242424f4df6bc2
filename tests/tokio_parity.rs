//! The behaviours Tokio's own `fs` tests check, written for `aiofs`: the
//! `AsyncRead`/`AsyncWrite`/`AsyncSeek` stream of `File`, its conversions, and
//! the `tokio::fs` functions `aiofs` implements or re-exports.
//!
//! Where the right answer is "what `std`/`tokio::fs` does", the test runs the same
//! steps on `std::fs::File` or `tokio::fs::File` and compares.

use std::io::{ErrorKind, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};

const HELLO: &[u8] = b"hello world...";
const MIB: usize = 1 << 20;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Deterministic bytes that do not repeat with any power-of-two period, so a
/// chunk landing at the wrong offset changes the content.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A small deterministic generator for the randomised comparisons.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Reads until `n` bytes or end of file (an `AsyncRead` may return short counts).
async fn read_up_to<R: AsyncReadExt + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    let mut filled = 0;
    while filled < n {
        let got = r.read(&mut out[filled..]).await.expect("read");
        if got == 0 {
            break;
        }
        filled += got;
    }
    out.truncate(filled);
    out
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

fn std_offset(file: &mut std::fs::File) -> u64 {
    file.stream_position().expect("std stream_position")
}

/// A file named `name` in `dir` holding `data`.
fn fixture(dir: &TempDir, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write fixture");
    path
}

async fn rw(path: &Path) -> aiofs::File {
    aiofs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .await
        .expect("open read-write")
}

// ----- write, read back -----

#[tokio::test]
async fn basic_read() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut buf = [0; 1024];
    let n = file.read(&mut buf).await.unwrap();
    assert_eq!(n, HELLO.len());
    assert_eq!(&buf[..n], HELLO);
}

#[tokio::test]
async fn write_then_flush_then_read_back() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(HELLO).await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), HELLO);
    drop(file);

    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut back = Vec::new();
    file.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, HELLO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_then_shutdown_then_read_back() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(HELLO).await.unwrap();
    file.shutdown().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), HELLO);
}

#[tokio::test]
async fn read_from_std_starts_at_the_std_offset() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut std = std::fs::File::open(&path).unwrap();
    std.seek(SeekFrom::Start(6)).unwrap();
    let mut file = aiofs::File::from(std);
    let mut buf = [0; 1024];
    let n = file.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &HELLO[6..]);
}

#[tokio::test]
async fn read_to_end_of_a_multi_mib_file() {
    let dir = tempdir();
    let data = pattern(5 * MIB + 12_345, 1);
    let path = fixture(&dir, "f", &data);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut back = Vec::new();
    let n = file.read_to_end(&mut back).await.unwrap();
    assert_eq!(n, data.len());
    assert!(back == data, "read_to_end differs from the file");
    assert_eq!(file.stream_position().await.unwrap(), data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_to_end_after_a_partial_read_appends_the_rest() {
    let dir = tempdir();
    let data = pattern(3 * MIB + 7, 2);
    let path = fixture(&dir, "f", &data);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut head = vec![0; 1000];
    file.read_exact(&mut head).await.unwrap();
    let mut rest = b"prefix".to_vec();
    let n = file.read_to_end(&mut rest).await.unwrap();
    assert_eq!(n, data.len() - 1000);
    assert_eq!(&head[..], &data[..1000]);
    assert_eq!(&rest[..6], b"prefix");
    assert!(rest[6..] == data[1000..], "the rest differs from the file");
}

#[tokio::test]
async fn read_to_string_stream() {
    let dir = tempdir();
    let text = "héllo wörld\n".repeat(10_000);
    let path = fixture(&dir, "f", text.as_bytes());
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut back = String::new();
    let n = file.read_to_string(&mut back).await.unwrap();
    assert_eq!(n, text.len());
    assert_eq!(back, text);

    let bad = fixture(&dir, "bad", b"ok \xff\xfe not utf-8");
    let mut file = aiofs::File::open(&bad).await.unwrap();
    let mut back = String::new();
    let err = file.read_to_string(&mut back).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
}

#[tokio::test]
async fn empty_read_returns_zero_without_reaching_eof() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut file = aiofs::File::open(&path).await.unwrap();
    assert_eq!(file.read(&mut []).await.unwrap(), 0);
    let mut buf = [0; 1024];
    let n = file.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], HELLO);
}

#[tokio::test]
async fn reads_at_end_of_file_return_zero_and_see_later_growth() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut all = Vec::new();
    file.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, HELLO);
    let mut buf = [0; 64];
    for _ in 0..3 {
        assert_eq!(file.read(&mut buf).await.unwrap(), 0);
    }
    // The file grows through another descriptor: the next read finds it, as a
    // std or Tokio file would.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    let n = file.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"more");
    assert_eq!(file.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn reads_past_the_end_after_a_seek_return_zero() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut file = aiofs::File::open(&path).await.unwrap();
    assert_eq!(
        file.seek(SeekFrom::Start(1_000_000)).await.unwrap(),
        1_000_000
    );
    let mut buf = [0; 64];
    assert_eq!(file.read(&mut buf).await.unwrap(), 0);
    assert_eq!(file.stream_position().await.unwrap(), 1_000_000);
}

// ----- seek -----

#[tokio::test]
async fn seek_start_current_end_then_read() {
    let dir = tempdir();
    let data = pattern(100_000, 3);
    let path = fixture(&dir, "f", &data);
    let mut file = aiofs::File::open(&path).await.unwrap();

    assert_eq!(file.seek(SeekFrom::Start(500)).await.unwrap(), 500);
    assert_eq!(read_up_to(&mut file, 10).await, &data[500..510]);
    assert_eq!(file.seek(SeekFrom::Current(90)).await.unwrap(), 600);
    assert_eq!(read_up_to(&mut file, 10).await, &data[600..610]);
    assert_eq!(file.seek(SeekFrom::Current(-110)).await.unwrap(), 500);
    assert_eq!(read_up_to(&mut file, 3).await, &data[500..503]);
    assert_eq!(file.seek(SeekFrom::End(-10)).await.unwrap(), 99_990);
    assert_eq!(read_up_to(&mut file, 100).await, &data[99_990..]);
    assert_eq!(file.seek(SeekFrom::End(0)).await.unwrap(), 100_000);
    assert_eq!(read_up_to(&mut file, 100).await, b"");
    assert_eq!(file.seek(SeekFrom::End(-100_000)).await.unwrap(), 0);
    assert_eq!(read_up_to(&mut file, 4).await, &data[..4]);
    // Backwards into data already read ahead, and forwards past it.
    assert_eq!(file.seek(SeekFrom::Start(2)).await.unwrap(), 2);
    assert_eq!(read_up_to(&mut file, 2).await, &data[2..4]);
    assert_eq!(file.seek(SeekFrom::Start(80_000)).await.unwrap(), 80_000);
    assert_eq!(read_up_to(&mut file, 20_000).await, &data[80_000..]);
    file.rewind().await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 0);
}

#[tokio::test]
async fn seek_before_the_start_is_invalid_input_and_keeps_the_position() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut file = aiofs::File::open(&path).await.unwrap();
    file.seek(SeekFrom::Start(5)).await.unwrap();

    let err = file.seek(SeekFrom::Current(-6)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(file.stream_position().await.unwrap(), 5);

    let err = file.seek(SeekFrom::End(-1000)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(file.stream_position().await.unwrap(), 5);

    let mut buf = [0; 4];
    file.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, &HELLO[5..9]);
}

/// `lseek` takes an `off_t`: Tokio (and std) refuse a position past `i64::MAX`.
#[tokio::test]
async fn seek_start_past_i64_max_fails_as_in_tokio() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut tokio_file = tokio::fs::File::open(&path).await.unwrap();
    let mut file = aiofs::File::open(&path).await.unwrap();
    let far = SeekFrom::Start(i64::MAX as u64 + 1);

    let want = tokio_file.seek(far).await.map_err(|e| e.kind());
    assert_eq!(want, Err(ErrorKind::InvalidInput));
    let got = file.seek(far).await.map_err(|e| e.kind());
    assert_eq!(got, want, "SeekFrom::Start(i64::MAX + 1)");
    assert_eq!(file.stream_position().await.unwrap(), 0);
}

#[tokio::test]
async fn seek_current_past_i64_max_fails_as_in_tokio() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut tokio_file = tokio::fs::File::open(&path).await.unwrap();
    let mut file = aiofs::File::open(&path).await.unwrap();
    file.seek(SeekFrom::Start(10)).await.unwrap();
    tokio_file.seek(SeekFrom::Start(10)).await.unwrap();

    let want = tokio_file
        .seek(SeekFrom::Current(i64::MAX))
        .await
        .map_err(|e| e.kind());
    assert_eq!(want, Err(ErrorKind::InvalidInput));
    let got = file
        .seek(SeekFrom::Current(i64::MAX))
        .await
        .map_err(|e| e.kind());
    assert_eq!(got, want, "SeekFrom::Current(i64::MAX) from 10");
    assert_eq!(file.stream_position().await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_past_the_end_then_write_leaves_a_hole_of_zeros() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(b"head").await.unwrap();
    assert_eq!(file.seek(SeekFrom::Start(70_000)).await.unwrap(), 70_000);
    file.write_all(b"tail").await.unwrap();
    assert_eq!(file.seek(SeekFrom::End(10)).await.unwrap(), 70_014);
    file.write_all(b"!").await.unwrap();
    file.flush().await.unwrap();

    let got = std::fs::read(&path).unwrap();
    let mut want = vec![0u8; 70_015];
    want[..4].copy_from_slice(b"head");
    want[70_000..70_004].copy_from_slice(b"tail");
    want[70_014] = b'!';
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the hole is not zeros or the data moved");
}

#[tokio::test]
async fn seek_returns_the_position_earlier_writes_imply() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.write_all(b"0123456789").await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 10);
    assert_eq!(file.seek(SeekFrom::Current(-3)).await.unwrap(), 7);
    file.write_all(b"ab").await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 9);
    assert_eq!(file.seek(SeekFrom::Current(5)).await.unwrap(), 14);
    file.write_all(b"Z").await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 15);
    file.rewind().await.unwrap();
    let mut back = Vec::new();
    file.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"0123456ab9\0\0\0\0Z");
    assert_eq!(file.stream_position().await.unwrap(), 15);
}

#[tokio::test]
async fn seek_from_end_counts_unflushed_writes() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.write_all(&pattern(100, 4)).await.unwrap();
    assert_eq!(file.seek(SeekFrom::End(0)).await.unwrap(), 100);
    file.write_all(&[1; 3 * MIB]).await.unwrap();
    // 3 MiB more, some of it still buffered or in flight.
    assert_eq!(
        file.seek(SeekFrom::End(-10)).await.unwrap(),
        (100 + 3 * MIB - 10) as u64
    );
    file.write_all(b"0123456789").await.unwrap();
    assert_eq!(
        file.seek(SeekFrom::End(0)).await.unwrap(),
        (100 + 3 * MIB) as u64
    );
    file.flush().await.unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), 100 + 3 * MIB);
    assert_eq!(&got[got.len() - 10..], b"0123456789");
    assert_eq!(&got[..100], &pattern(100, 4)[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_position_follows_reads_and_writes() {
    let dir = tempdir();
    let data = pattern(200_000, 5);
    let path = fixture(&dir, "f", &data);
    let mut file = rw(&path).await;
    assert_eq!(file.stream_position().await.unwrap(), 0);
    let mut buf = vec![0; 1234];
    file.read_exact(&mut buf).await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 1234);
    file.write_all(b"xyz").await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 1237);
    file.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..], &data[1237..1237 + 1234]);
    assert_eq!(file.stream_position().await.unwrap(), 2471);
    file.flush().await.unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(&got[1234..1237], b"xyz");
    assert_eq!(got.len(), data.len());
}

/// Tokio's `buf_reader_seek_after_write`: a `BufReader` passes writes through,
/// then seeks and reads.
#[tokio::test]
async fn buf_reader_seek_after_write() {
    for (seek, expected) in [
        (SeekFrom::Start(0), 0),
        (SeekFrom::End(-2), HELLO.len() - 2),
        (SeekFrom::Current(-2), HELLO.len() - 2),
    ] {
        let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
        let mut reader = BufReader::new(file);
        reader.write_all(HELLO).await.unwrap();
        assert_eq!(reader.seek(seek).await.unwrap(), expected as u64);
        let mut contents = Vec::new();
        reader.read_to_end(&mut contents).await.unwrap();
        assert_eq!(contents, &HELLO[expected..], "after {seek:?}");
    }
}

// ----- set_len, sync -----

#[tokio::test]
async fn set_len_shrinks_and_reads_stop_at_the_new_end() {
    let dir = tempdir();
    let data = pattern(300_000, 6);
    let path = fixture(&dir, "f", &data);
    let mut file = rw(&path).await;
    let mut buf = vec![0; 1000];
    // Read ahead of the cut, then cut below what was read ahead.
    file.read_exact(&mut buf).await.unwrap();
    file.set_len(1500).await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 1000);
    let rest = read_up_to(&mut file, 10_000).await;
    assert_eq!(rest, &data[1000..1500]);
    assert_eq!(file.metadata().await.unwrap().len(), 1500);
    assert_eq!(std::fs::read(&path).unwrap(), &data[..1500]);

    // Past the new end: nothing.
    file.set_len(10).await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 1500);
    assert_eq!(file.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_len_grows_with_zeros_and_keeps_the_position() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.write_all(b"abc").await.unwrap();
    // Buffered write first, then the new length.
    file.set_len(100_000).await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 3);
    assert_eq!(file.metadata().await.unwrap().len(), 100_000);
    file.rewind().await.unwrap();
    let mut back = Vec::new();
    file.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), 100_000);
    assert_eq!(&back[..3], b"abc");
    assert!(
        back[3..].iter().all(|&b| b == 0),
        "the extension is not zeros"
    );

    // Shrink below buffered data, then write at the position: a new hole.
    file.seek(SeekFrom::Start(50)).await.unwrap();
    file.write_all(b"q").await.unwrap();
    file.set_len(2).await.unwrap();
    file.write_all(b"r").await.unwrap();
    file.flush().await.unwrap();
    let mut want = vec![0u8; 52];
    want[..2].copy_from_slice(b"ab");
    want[51] = b'r';
    assert_eq!(std::fs::read(&path).unwrap(), want);
}

#[tokio::test]
async fn sync_all_writes_buffered_data_first() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let data = pattern(3 * MIB + 99, 7);
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(&data).await.unwrap();
    file.sync_all().await.unwrap();
    assert!(
        std::fs::read(&path).unwrap() == data,
        "data missing after sync_all"
    );
    // The file's position is unaffected: the next write follows.
    file.write_all(b"end").await.unwrap();
    file.sync_all().await.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        data.len() as u64 + 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_data_writes_buffered_data_first() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(HELLO).await.unwrap();
    file.sync_data().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), HELLO);
}

// ----- copy -----

#[tokio::test]
async fn copy_copies_content_and_returns_its_length() {
    let dir = tempdir();
    for len in [0, 11, MIB, 4 * MIB + 321] {
        let data = pattern(len, len as u64);
        let from = fixture(&dir, "from", &data);
        let to = dir.path().join("to");
        // `to` exists and is longer: it is truncated.
        std::fs::write(&to, vec![9u8; 5 * MIB]).unwrap();
        let n = aiofs::copy(&from, &to).await.unwrap();
        assert_eq!(n, len as u64);
        assert!(
            std::fs::read(&to).unwrap() == data,
            "copy of {len} bytes differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_copies_permission_bits() {
    let dir = tempdir();
    let from = fixture(&dir, "from", HELLO);
    for mode in [0o600, 0o640, 0o444, 0o755] {
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(mode)).unwrap();
        let to = dir.path().join(format!("to-{mode:o}"));
        aiofs::copy(&from, &to).await.unwrap();
        assert_eq!(mode_of(&to), mode, "mode of the copy");
        assert_eq!(std::fs::read(&to).unwrap(), HELLO);
        // Tokio gives the same.
        let tokio_to = dir.path().join(format!("tokio-{mode:o}"));
        tokio::fs::copy(&from, &tokio_to).await.unwrap();
        assert_eq!(mode_of(&to), mode_of(&tokio_to));
    }
}

#[tokio::test]
async fn copy_from_a_missing_source_is_not_found() {
    let dir = tempdir();
    let to = dir.path().join("to");
    let err = aiofs::copy(dir.path().join("missing"), &to)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        !to.exists(),
        "copy created its destination without a source"
    );
}

// ----- flush and drop -----

#[tokio::test]
async fn flush_makes_writes_visible_to_std() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    let mut want = Vec::new();
    for i in 0..5 {
        let part = pattern(1000 + i * 777, i as u64);
        file.write_all(&part).await.unwrap();
        want.extend_from_slice(&part);
        file.flush().await.unwrap();
        assert!(std::fs::read(&path).unwrap() == want, "after flush {i}");
    }
}

/// Tokio's `File` finishes a pending write after being dropped; so must this one.
///
/// A few dozen requests run first, so that glibc's worker pool is warm and idle
/// (a request handed to an idle worker is still cancellable until it wakes);
/// then files are dropped with unflushed writes in every shape: one small
/// buffered write, large chunks queued behind each other, many small chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_without_flush_the_data_still_arrives() {
    let dir = tempdir();
    let warm = aiofs::File::from_std(tempfile::tempfile().unwrap());
    for i in 0..40 {
        let (res, _) = warm.write_at(vec![1u8; 512], i * 512).await;
        res.unwrap();
    }

    let mut expected = Vec::new();
    for i in 0..16 {
        let path = dir.path().join(format!("small-{i}"));
        let data = pattern(10 + i, 200 + i as u64);
        let mut file = aiofs::File::create(&path).await.unwrap();
        file.write_all(&data).await.unwrap();
        drop(file);
        expected.push((path, data));
    }

    let large = dir.path().join("large");
    let data = pattern(5 * MIB + 17, 8);
    let mut file = aiofs::File::create(&large).await.unwrap();
    file.write_all(&data).await.unwrap();
    drop(file);
    expected.push((large, data));

    for i in 0..8 {
        let path = dir.path().join(format!("chunked-{i}"));
        let data = pattern(100_000 + i * 1000, 100 + i as u64);
        let mut file = aiofs::File::create(&path).await.unwrap();
        file.set_max_buf_size(4096);
        file.write_all(&data).await.unwrap();
        drop(file);
        expected.push((path, data));
    }

    // One deadline for all of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lost: Vec<String> = expected
            .iter()
            .filter(|(path, data)| std::fs::read(path).unwrap() != *data)
            .map(|(path, data)| {
                let got = std::fs::read(path).unwrap();
                let at = got.iter().zip(data).position(|(a, b)| a != b);
                format!(
                    "{}: {} of {} bytes, first difference at {at:?}",
                    path.file_name().unwrap().to_string_lossy(),
                    got.len(),
                    data.len()
                )
            })
            .collect();
        if lost.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "files dropped unflushed still lack data after 10 s: {lost:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ----- try_clone, into_std, try_into_std -----

#[tokio::test]
async fn try_clone_sees_data_written_and_flushed_before() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.write_all(HELLO).await.unwrap();
    // try_clone writes the buffered data first.
    let mut clone = file.try_clone().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), HELLO);
    clone.rewind().await.unwrap();
    let mut back = Vec::new();
    clone.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, HELLO);

    // Tokio's `write_to_clone`: writes through the clone land in the file.
    let file = aiofs::File::create(dir.path().join("g")).await.unwrap();
    let mut clone = file.try_clone().await.unwrap();
    clone.write_all(HELLO).await.unwrap();
    clone.flush().await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), HELLO);
}

/// The original reads again after the clone wrote and flushed: it sees the new
/// bytes, as a std or Tokio file does (no stale read-ahead). The same steps run
/// on `tokio::fs::File` first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_reads_what_a_clone_wrote_after_flush() {
    let dir = tempdir();
    let data = pattern(64 * 1024, 9);
    let news = b"written by the clone";

    let path = fixture(&dir, "tokio", &data);
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .unwrap();
    let mut clone = file.try_clone().await.unwrap();
    let mut head = vec![0; 100];
    file.read_exact(&mut head).await.unwrap();
    clone.seek(SeekFrom::Start(1000)).await.unwrap();
    clone.write_all(news).await.unwrap();
    clone.flush().await.unwrap();
    file.seek(SeekFrom::Start(1000)).await.unwrap();
    assert_eq!(read_up_to(&mut file, 20).await, news, "tokio::fs");

    let path = fixture(&dir, "aiofs", &data);
    let mut file = rw(&path).await;
    let mut clone = file.try_clone().await.unwrap();
    file.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[..], &data[..100]);
    clone.seek(SeekFrom::Start(1000)).await.unwrap();
    clone.write_all(news).await.unwrap();
    clone.flush().await.unwrap();
    file.seek(SeekFrom::Start(1000)).await.unwrap();
    assert_eq!(read_up_to(&mut file, 20).await, news, "aiofs");
}

/// Bytes changed through another descriptor after this file read near them are
/// read as they are now, as with `std` and `tokio::fs` (which run `read(2)` for
/// every call).
#[tokio::test]
async fn reads_see_bytes_changed_through_another_descriptor() {
    let dir = tempdir();
    let data = pattern(64 * 1024, 15);
    let path = fixture(&dir, "f", &data);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut head = vec![0; 10];
    file.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[..], &data[..10]);

    let other = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&other, b"changed", 10).unwrap();

    let next = read_up_to(&mut file, 7).await;
    assert_eq!(next, b"changed");
}

/// `std::fs::File::try_clone` (and so `tokio::fs::File::try_clone`) gives a
/// handle on the same open file description: one cursor for both. Interleaved
/// writes through the two handles follow each other, as they do with Tokio.
#[tokio::test]
async fn try_clone_shares_the_cursor_as_in_tokio() {
    let dir = tempdir();

    let tokio_path = dir.path().join("tokio");
    let mut file = tokio::fs::File::create(&tokio_path).await.unwrap();
    file.write_all(b"one;").await.unwrap();
    let mut clone = file.try_clone().await.unwrap();
    clone.write_all(b"two;").await.unwrap();
    clone.flush().await.unwrap();
    file.write_all(b"three;").await.unwrap();
    file.flush().await.unwrap();
    let want = std::fs::read(&tokio_path).unwrap();
    assert_eq!(want, b"one;two;three;");

    let path = dir.path().join("aiofs");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(b"one;").await.unwrap();
    let mut clone = file.try_clone().await.unwrap();
    clone.write_all(b"two;").await.unwrap();
    clone.flush().await.unwrap();
    file.write_all(b"three;").await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&path).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

#[tokio::test]
async fn try_clone_keeps_max_buf_size() {
    let dir = tempdir();
    let mut file = aiofs::File::create(dir.path().join("f")).await.unwrap();
    file.set_max_buf_size(128);
    let clone = file.try_clone().await.unwrap();
    assert_eq!(clone.max_buf_size(), 128);
}

#[tokio::test]
async fn into_std_after_buffered_writes_has_the_data_and_the_offset() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    let data = pattern(3 * MIB, 10);
    file.write_all(&data).await.unwrap();
    file.seek(SeekFrom::Start(10)).await.unwrap();
    file.write_all(b"12345").await.unwrap();
    let mut std = file.into_std().await;
    assert_eq!(std_offset(&mut std), 15);
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(&got[10..15], b"12345");
    assert!(got[15..] == data[15..] && got[..10] == data[..10]);
    // std goes on from there.
    std.write_all(b"67").unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[10..17], b"1234567");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_std_after_reads_is_at_the_stream_position() {
    let dir = tempdir();
    let data = pattern(3 * MIB, 11);
    let path = fixture(&dir, "f", &data);
    let mut file = aiofs::File::open(&path).await.unwrap();
    let mut buf = vec![0; 100];
    file.read_exact(&mut buf).await.unwrap();
    // Read-ahead went further; the std file must not.
    let mut std = file.into_std().await;
    assert_eq!(std_offset(&mut std), 100);
    let mut next = [0; 10];
    std.read_exact(&mut next).unwrap();
    assert_eq!(&next[..], &data[100..110]);

    // Tokio's `write_into_std`: an untouched file converts at offset 0.
    let file = aiofs::File::create(dir.path().join("g")).await.unwrap();
    let mut std = file.into_std().await;
    std.write_all(HELLO).unwrap();
    assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), HELLO);
}

#[tokio::test]
async fn try_into_std_refuses_while_writes_are_buffered() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.write_all(HELLO).await.unwrap();
    let mut file = match file.try_into_std() {
        Ok(_) => panic!("try_into_std succeeded with writes buffered"),
        Err(file) => file,
    };
    file.flush().await.unwrap();
    let mut std = file.try_into_std().expect("try_into_std after flush");
    assert_eq!(std_offset(&mut std), HELLO.len() as u64);
    std.write_all(b"!").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), [HELLO, b"!"].concat());

    // Tokio's `write_into_std_immediate`.
    let file = aiofs::File::create(dir.path().join("g")).await.unwrap();
    let mut std = file.try_into_std().expect("untouched file");
    std.write_all(HELLO).unwrap();
    assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), HELLO);
}

// ----- buffered adapters, vectored writes -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_reader_lines_over_a_multi_mib_file() {
    let dir = tempdir();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 5 * MIB {
        text.push_str(&format!("line {i:07} {}\n", "x".repeat(i % 61)));
        i += 1;
    }
    let path = fixture(&dir, "f", text.as_bytes());
    let file = aiofs::File::open(&path).await.unwrap();
    let mut lines = BufReader::new(file).lines();
    let mut count = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        let want = format!("line {count:07} {}", "x".repeat(count % 61));
        assert_eq!(line, want, "line {count}");
        count += 1;
    }
    assert_eq!(count, i);
}

#[tokio::test]
async fn buf_writer_many_small_lines_then_flush() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let file = aiofs::File::create(&path).await.unwrap();
    let mut writer = BufWriter::new(file);
    let mut want = String::new();
    for i in 0..60_000 {
        let line = format!("{i} {}\n", i * 7);
        writer.write_all(line.as_bytes()).await.unwrap();
        want.push_str(&line);
    }
    writer.flush().await.unwrap();
    assert!(std::fs::read_to_string(&path).unwrap() == want);
    writer.shutdown().await.unwrap();
    assert_eq!(aiofs::read_to_string(&path).await.unwrap(), want);
}

#[tokio::test]
async fn write_vectored_writes_every_slice_in_order() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    assert!(tokio::io::AsyncWrite::is_write_vectored(&file));
    let n = file
        .write_vectored(&[IoSlice::new(HELLO), IoSlice::new(b""), IoSlice::new(b"abc")])
        .await
        .unwrap();
    assert_eq!(n, HELLO.len() + 3);
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), [HELLO, b"abc"].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_vectored_with_a_small_max_buf_size_writes_a_prefix() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = aiofs::File::create(&path).await.unwrap();
    file.set_max_buf_size(4096);
    let parts: Vec<Vec<u8>> = (0..20).map(|i| pattern(1000 + i * 13, i as u64)).collect();
    let want = parts.concat();
    let mut written = 0;
    while written < want.len() {
        // The slices not yet written, the first one cut where the last call stopped.
        let mut slices = Vec::new();
        let mut skip = written;
        for p in &parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            slices.push(IoSlice::new(&p[skip..]));
            skip = 0;
        }
        let n = file.write_vectored(&slices).await.unwrap();
        assert!(n > 0, "write_vectored wrote nothing");
        written += n;
    }
    assert_eq!(written, want.len());
    file.flush().await.unwrap();
    assert!(std::fs::read(&path).unwrap() == want);
}

#[tokio::test]
async fn small_reads_after_a_large_write_see_it_without_flush() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    let data = pattern(3 * MIB + 5, 12);
    file.write_all(&data).await.unwrap();
    // Straight after the write: at the end.
    let mut buf = [0; 16];
    assert_eq!(file.read(&mut buf).await.unwrap(), 0);
    for pos in [0, 1, 4095, MIB - 3, 2 * MIB + 77, data.len() - 16] {
        file.seek(SeekFrom::Start(pos as u64)).await.unwrap();
        file.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[..], &data[pos..pos + 16], "at {pos}");
    }
    // Overwrite in the middle, then read it back at once.
    file.seek(SeekFrom::Start(MIB as u64)).await.unwrap();
    file.write_all(b"fresh").await.unwrap();
    file.seek(SeekFrom::Current(-7)).await.unwrap();
    let mut seven = [0; 9];
    file.read_exact(&mut seven).await.unwrap();
    assert_eq!(&seven[..2], &data[MIB - 2..MIB]);
    assert_eq!(&seven[2..7], b"fresh");
    assert_eq!(&seven[7..], &data[MIB + 5..MIB + 7]);
}

// ----- the data functions -----

#[tokio::test]
async fn fs_write_read_and_read_to_string() {
    let dir = tempdir();
    let path = dir.path().join("f");
    aiofs::write(&path, "Hello, World!").await.unwrap();
    assert_eq!(aiofs::read_to_string(&path).await.unwrap(), "Hello, World!");
    assert_eq!(aiofs::read(&path).await.unwrap(), b"Hello, World!");

    // write truncates a longer file.
    aiofs::write(&path, b"short").await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"short");

    let big = pattern(4 * MIB + 3, 13);
    aiofs::write(&path, &big).await.unwrap();
    assert!(std::fs::read(&path).unwrap() == big);
    assert!(aiofs::read(&path).await.unwrap() == big);

    aiofs::write(&path, b"").await.unwrap();
    assert_eq!(aiofs::read(&path).await.unwrap(), b"");
    assert_eq!(aiofs::read_to_string(&path).await.unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_read_to_string_of_non_utf8_is_invalid_data() {
    let dir = tempdir();
    let path = fixture(&dir, "f", b"valid then \xc3\x28 invalid");
    let err = aiofs::read_to_string(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let tokio_err = tokio::fs::read_to_string(&path).await.unwrap_err();
    assert_eq!(err.kind(), tokio_err.kind());
}

#[tokio::test]
async fn fs_functions_on_missing_paths_are_not_found() {
    let dir = tempdir();
    let missing = dir.path().join("missing");
    assert_eq!(
        aiofs::read(&missing).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        aiofs::read_to_string(&missing).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        aiofs::write(dir.path().join("no/such/dir"), b"x")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

// ----- against std, step by step -----

#[derive(Debug)]
enum Op {
    Write(Vec<u8>),
    Read(usize),
    Seek(SeekFrom),
    Flush,
    SetLen(u64),
}

fn random_ops(seed: u64, count: usize) -> Vec<Op> {
    let mut rng = XorShift::new(seed);
    (0..count)
        .map(|i| match rng.below(10) {
            0..=2 => {
                let len = match rng.below(4) {
                    0 => rng.below(16),
                    1 => rng.below(5000),
                    2 => rng.below(70_000),
                    _ => rng.below(300_000),
                };
                Op::Write(pattern(len as usize, seed * 1000 + i as u64))
            }
            3..=5 => Op::Read(match rng.below(3) {
                0 => rng.below(32),
                1 => rng.below(20_000),
                _ => rng.below(400_000),
            } as usize),
            6 | 7 => Op::Seek(match rng.below(3) {
                0 => SeekFrom::Start(rng.below(600_000)),
                1 => SeekFrom::Current(rng.below(200_000) as i64 - 120_000),
                _ => SeekFrom::End(rng.below(100_000) as i64 - 80_000),
            }),
            8 => Op::Flush,
            _ => Op::SetLen(rng.below(500_000)),
        })
        .collect()
}

async fn compare_with_std(seed: u64, max_buf_size: Option<usize>) {
    compare_with_std_opts(seed, max_buf_size, false).await;
}

/// Runs `random_ops(seed)` on an `aiofs::File` and a `std::fs::File` opened the
/// same way on copies of one file: every read, seek result and position, and the
/// final contents, must be equal.
async fn compare_with_std_opts(seed: u64, max_buf_size: Option<usize>, append: bool) {
    let dir = tempdir();
    let initial = pattern(150_000, seed);
    let ours_path = fixture(&dir, "ours", &initial);
    let std_path = fixture(&dir, "std", &initial);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    if append {
        opts.append(true);
    } else {
        opts.write(true);
    }
    let mut ours = aiofs::OpenOptions::from(opts.clone())
        .open(&ours_path)
        .await
        .unwrap();
    if let Some(size) = max_buf_size {
        ours.set_max_buf_size(size);
    }
    let mut std = opts.open(&std_path).unwrap();

    for (step, op) in random_ops(seed, 120).into_iter().enumerate() {
        let what = format!("seed {seed}, append {append}, step {step}: {op:?}");
        let what = &what[..what.len().min(120)];
        match op {
            Op::Write(data) => {
                ours.write_all(&data).await.unwrap();
                std.write_all(&data).unwrap();
            }
            Op::Read(n) => {
                let got = read_up_to(&mut ours, n).await;
                let mut want = vec![0; n];
                let mut filled = 0;
                loop {
                    let k = std.read(&mut want[filled..]).unwrap();
                    if k == 0 {
                        break;
                    }
                    filled += k;
                }
                want.truncate(filled);
                assert_eq!(got.len(), want.len(), "{what}");
                assert!(got == want, "{what}: the bytes read differ");
            }
            Op::Seek(target) => {
                let got = ours.seek(target).await.map_err(|e| e.kind());
                let want = std.seek(target).map_err(|e| e.kind());
                assert_eq!(got, want, "{what}");
            }
            Op::Flush => ours.flush().await.unwrap(),
            Op::SetLen(len) => {
                ours.set_len(len).await.unwrap();
                std.set_len(len).unwrap();
            }
        }
        assert_eq!(
            ours.stream_position().await.unwrap(),
            std.stream_position().unwrap(),
            "{what}: position"
        );
    }
    ours.flush().await.unwrap();
    let got = std::fs::read(&ours_path).unwrap();
    let want = std::fs::read(&std_path).unwrap();
    assert_eq!(got.len(), want.len(), "seed {seed}: final length");
    assert!(got == want, "seed {seed}: final contents differ");
}

#[tokio::test]
async fn interleaved_writes_reads_and_seeks_match_std() {
    for seed in 1..=6 {
        compare_with_std(seed, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_writes_reads_and_seeks_match_std_multi_thread() {
    for seed in 7..=12 {
        compare_with_std(seed, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_ops_with_a_small_max_buf_size_match_std() {
    for seed in 13..=16 {
        compare_with_std(seed, Some(4096)).await;
    }
}

/// Overlapping writes with no flush between them: the later one wins, as in std.
#[tokio::test]
async fn overlapping_unflushed_writes_keep_their_order() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.set_max_buf_size(4096);
    for round in 0..20u8 {
        file.rewind().await.unwrap();
        file.write_all(&vec![round; 40_000]).await.unwrap();
        file.seek(SeekFrom::Start(5000)).await.unwrap();
        file.write_all(&[round + 100; 10]).await.unwrap();
    }
    file.flush().await.unwrap();
    let got = std::fs::read(&path).unwrap();
    let mut want = vec![19u8; 40_000];
    want[5000..5010].fill(119);
    assert!(got == want, "an older write landed after a newer one");
}

/// Tokio's `set_max_buf_size_read` / `set_max_buf_size_write`: one `read` or
/// `write` call moves at most `max_buf_size` bytes.
#[tokio::test]
async fn set_max_buf_size_bounds_one_read_and_one_write_as_in_tokio() {
    let dir = tempdir();
    let path = fixture(&dir, "f", HELLO);
    let mut buf = [0; 1024];

    let mut tokio_file = tokio::fs::File::open(&path).await.unwrap();
    tokio_file.set_max_buf_size(1);
    assert_eq!(tokio_file.read(&mut buf).await.unwrap(), 1, "tokio::fs");

    let mut file = aiofs::File::open(&path).await.unwrap();
    file.set_max_buf_size(1);
    let n = file.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &HELLO[..n]);
    assert_eq!(n, 1, "one read with max_buf_size 1");

    let mut file = aiofs::File::create(dir.path().join("g")).await.unwrap();
    file.set_max_buf_size(1);
    assert_eq!(
        file.write(HELLO).await.unwrap(),
        1,
        "one write with max_buf_size 1"
    );
}

#[tokio::test]
async fn small_max_buf_size_large_write_and_read() {
    let dir = tempdir();
    let path = dir.path().join("f");
    let mut file = rw(&path).await;
    file.set_max_buf_size(4096);
    assert_eq!(file.max_buf_size(), 4096);
    let data = pattern(2 * MIB + 4097, 14);
    file.write_all(&data).await.unwrap();
    file.rewind().await.unwrap();
    let mut back = Vec::new();
    file.read_to_end(&mut back).await.unwrap();
    assert!(back == data, "read back differs");
    file.seek(SeekFrom::Start(12_345)).await.unwrap();
    let mut mid = vec![0; 300_000];
    file.read_exact(&mut mid).await.unwrap();
    assert!(mid[..] == data[12_345..312_345]);
    file.flush().await.unwrap();
    assert!(std::fs::read(&path).unwrap() == data);
}

// ----- re-exported functions -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reexported_directory_functions_work() {
    let dir = tempdir();
    let base = dir.path().join("a").join("b");
    aiofs::create_dir_all(&base).await.unwrap();
    assert!(aiofs::metadata(&base).await.unwrap().is_dir());
    aiofs::create_dir_all(&base).await.unwrap();

    for name in ["one", "two", "three"] {
        aiofs::write(base.join(name), name).await.unwrap();
    }
    aiofs::create_dir_all(base.join("sub")).await.unwrap();
    let mut entries = aiofs::read_dir(&base).await.unwrap();
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await.unwrap() {
        let is_dir = entry.file_type().await.unwrap().is_dir();
        names.push((entry.file_name().into_string().unwrap(), is_dir));
    }
    names.sort();
    assert_eq!(
        names,
        [
            ("one".to_string(), false),
            ("sub".to_string(), true),
            ("three".to_string(), false),
            ("two".to_string(), false),
        ]
    );

    aiofs::rename(base.join("one"), base.join("uno"))
        .await
        .unwrap();
    assert!(!aiofs::try_exists(base.join("one")).await.unwrap());
    assert!(aiofs::try_exists(base.join("uno")).await.unwrap());
    assert_eq!(aiofs::metadata(base.join("uno")).await.unwrap().len(), 3);
    assert_eq!(
        aiofs::read_to_string(base.join("uno")).await.unwrap(),
        "one"
    );

    aiofs::remove_file(base.join("uno")).await.unwrap();
    assert!(!aiofs::try_exists(base.join("uno")).await.unwrap());
    assert_eq!(
        aiofs::metadata(base.join("uno")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        aiofs::remove_file(base.join("uno"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn open_options_append_writes_at_the_end() {
    let dir = tempdir();
    let path = fixture(&dir, "f", b"start;");
    let mut file = aiofs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .unwrap();
    file.write_all(b"one;").await.unwrap();
    // A seek does not move appends.
    file.seek(SeekFrom::Start(0)).await.unwrap();
    file.write_all(b"two;").await.unwrap();
    assert_eq!(file.stream_position().await.unwrap(), 14);
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"start;one;two;");
}

/// After an `O_APPEND` write, a seek to the start really moves there: the next
/// read returns the file from its first byte, as with std and Tokio.
#[tokio::test]
async fn append_then_seek_to_start_then_read_reads_from_the_start() {
    let dir = tempdir();
    let path = fixture(&dir, "f", b"start;");
    let mut std = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .unwrap();
    std.write_all(b"std;").unwrap();
    assert_eq!(std.seek(SeekFrom::Start(0)).unwrap(), 0);
    let mut want = Vec::new();
    std.read_to_end(&mut want).unwrap();
    assert_eq!(want, b"start;std;");

    let mut file = aiofs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .await
        .unwrap();
    file.write_all(b"aio;").await.unwrap();
    assert_eq!(file.seek(SeekFrom::Start(0)).await.unwrap(), 0);
    assert_eq!(
        file.stream_position().await.unwrap(),
        0,
        "position after the seek"
    );
    let mut got = Vec::new();
    file.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"start;std;aio;");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_mode_interleaved_ops_match_std() {
    for seed in 17..=20 {
        compare_with_std_opts(seed, None, true).await;
    }
}
