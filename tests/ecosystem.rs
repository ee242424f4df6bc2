//! `aiofs::File` with the crates people pair with `tokio::fs`: tokio-util's
//! `ReaderStream`, `StreamReader`, `FramedRead`/`FramedWrite` with
//! `LinesCodec` and the `compat` layer to `futures::io`, async-compression's
//! gzip, Tokio's `BufReader`/`BufWriter` and `tokio::io::copy`. Each result
//! is checked against what `std` gives for the same data.

mod support;

use std::future::Future;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt as _};
use support::Rng;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

/// Generous: only a hang trips it.
const TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("the test took more than its bound")
}

/// `len` pseudo-random bytes (not periodic: a misplaced chunk shows).
fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Lines of many lengths: empty ones, short ones, and some longer than the
/// usual 8 KiB buffers; the last line has no newline.
fn text(seed: u64, lines: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    for i in 0..lines {
        let len = match rng.below(20) {
            0 => 0,
            1 => 8 * 1024 + rng.below(20_000) as usize,
            _ => rng.below(120) as usize,
        };
        out.extend((0..len).map(|k| char::from(b'a' + ((i + k) % 26) as u8)));
        if i + 1 < lines {
            out.push('\n');
        }
    }
    out
}

fn std_lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("open");
    std::io::BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .expect("std lines")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_stream_yields_the_file_and_stream_reader_writes_it() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src.bin");
        let data = binary(1, 5 * 1024 * 1024 + 77);
        std::fs::write(&src, &data).expect("write");

        // aiofs::File -> ReaderStream: the chunks, joined, are the file.
        let file = aiofs::File::open(&src).await.expect("open");
        let chunks: Vec<Bytes> = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
            .try_collect()
            .await
            .expect("read stream");
        assert!(chunks.len() > 1, "streamed in chunks");
        assert_eq!(chunks.concat(), std::fs::read(&src).expect("std read"));

        // A stream of uneven chunks -> StreamReader -> copy into an aiofs::File.
        let mut rng = Rng::new(2);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let n = (1 + rng.below(100_000) as usize).min(data.len() - at);
            pieces.push(Ok::<_, std::io::Error>(Bytes::copy_from_slice(
                &data[at..at + n],
            )));
            at += n;
        }
        let mut reader = tokio_util::io::StreamReader::new(futures::stream::iter(pieces));
        let dst = dir.path().join("dst.bin");
        let mut out = aiofs::File::create(&dst).await.expect("create");
        let copied = tokio::io::copy(&mut reader, &mut out).await.expect("copy");
        out.shutdown().await.expect("shutdown");
        assert_eq!(copied, data.len() as u64);
        assert_eq!(std::fs::read(&dst).expect("std read"), data);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_lines_read_and_write_like_std() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lines.txt");
        let content = text(3, 3000);
        std::fs::write(&path, &content).expect("write");

        // FramedRead<aiofs::File, LinesCodec>: the lines std's BufRead sees.
        let file = aiofs::File::open(&path).await.expect("open");
        let lines: Vec<String> =
            tokio_util::codec::FramedRead::new(file, tokio_util::codec::LinesCodec::new())
                .try_collect()
                .await
                .expect("framed read");
        assert_eq!(lines, std_lines(&path));

        // FramedWrite<aiofs::File, LinesCodec>: the file std would write.
        let out_path = dir.path().join("out.txt");
        let file = aiofs::File::create(&out_path).await.expect("create");
        let mut sink =
            tokio_util::codec::FramedWrite::new(file, tokio_util::codec::LinesCodec::new());
        for line in &lines {
            sink.feed(line.as_str()).await.expect("feed");
        }
        // Flushes, then shuts the file down.
        SinkExt::<&str>::close(&mut sink).await.expect("close");
        let mut want = Vec::new();
        for line in &lines {
            writeln!(want, "{line}").expect("write to a Vec");
        }
        assert_eq!(std::fs::read(&out_path).expect("std read"), want);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_to_futures_io_reads_and_writes() {
    use futures::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
    use tokio_util::compat::{TokioAsyncReadCompatExt as _, TokioAsyncWriteCompatExt as _};

    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("compat.bin");
        let data = binary(4, 2 * 1024 * 1024 + 5);

        // Write through futures::io::AsyncWrite.
        let file = aiofs::File::create(&path).await.expect("create");
        let mut writer = file.compat_write();
        for chunk in data.chunks(10_007) {
            writer.write_all(chunk).await.expect("write_all");
        }
        writer.close().await.expect("close");
        assert_eq!(std::fs::read(&path).expect("std read"), data);

        // Read through futures::io::AsyncRead (+ AsyncSeek).
        let file = aiofs::File::open(&path).await.expect("open");
        let mut reader = file.compat();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.expect("read_to_end");
        assert_eq!(all, data);
        let pos = reader
            .seek(std::io::SeekFrom::Start(1_000_000))
            .await
            .expect("seek");
        assert_eq!(pos, 1_000_000);
        let mut part = vec![0u8; 4096];
        reader.read_exact(&mut part).await.expect("read_exact");
        let mut std_part = vec![0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&path).expect("open"),
            &mut std_part,
            1_000_000,
        )
        .expect("std pread");
        assert_eq!(part, std_part);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_round_trip_through_aiofs_files() {
    use async_compression::tokio::bufread::{GzipDecoder, GzipEncoder};

    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("data.txt");
        let gz = dir.path().join("data.txt.gz");
        let back = dir.path().join("data.back.txt");
        let content = text(5, 20_000);
        std::fs::write(&src, &content).expect("write");

        // Compress: aiofs::File -> BufReader -> GzipEncoder -> aiofs::File.
        let input = aiofs::File::open(&src).await.expect("open");
        let mut encoder = GzipEncoder::new(tokio::io::BufReader::new(input));
        let mut output = aiofs::File::create(&gz).await.expect("create");
        tokio::io::copy(&mut encoder, &mut output)
            .await
            .expect("compress");
        output.shutdown().await.expect("shutdown");
        let compressed_len = std::fs::metadata(&gz).expect("stat").len();
        assert!(compressed_len < content.len() as u64 / 2, "it compressed");

        // std (flate2) reads what we wrote.
        let mut std_out = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("open"))
            .read_to_string(&mut std_out)
            .expect("flate2 decode");
        assert_eq!(std_out, content);

        // Decompress: aiofs::File -> BufReader -> GzipDecoder -> aiofs::File.
        let input = aiofs::File::open(&gz).await.expect("open");
        let mut decoder = GzipDecoder::new(tokio::io::BufReader::new(input));
        let mut output = aiofs::File::create(&back).await.expect("create");
        tokio::io::copy(&mut decoder, &mut output)
            .await
            .expect("decompress");
        output.shutdown().await.expect("shutdown");
        assert_eq!(std::fs::read(&back).expect("std read"), content.as_bytes());

        // And what std (flate2) compressed, aiofs + async-compression reads.
        let std_gz = dir.path().join("std.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&std_gz).expect("create"),
            flate2::Compression::default(),
        );
        enc.write_all(content.as_bytes()).expect("flate2 encode");
        enc.finish().expect("flate2 finish");
        let input = aiofs::File::open(&std_gz).await.expect("open");
        let mut decoded = String::new();
        GzipDecoder::new(tokio::io::BufReader::new(input))
            .read_to_string(&mut decoded)
            .await
            .expect("decode");
        assert_eq!(decoded, content);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_reader_and_buf_writer_around_file() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("buffered.txt");
        let content = text(6, 5000);

        // BufWriter<aiofs::File>: many small writes, one file, as std writes it.
        let file = aiofs::File::create(&path).await.expect("create");
        let mut writer = tokio::io::BufWriter::new(file);
        for piece in content.as_bytes().chunks(37) {
            writer.write_all(piece).await.expect("write_all");
        }
        writer.shutdown().await.expect("shutdown");
        let std_path = dir.path().join("std.txt");
        let mut std_writer =
            std::io::BufWriter::new(std::fs::File::create(&std_path).expect("create"));
        for piece in content.as_bytes().chunks(37) {
            std_writer.write_all(piece).expect("std write");
        }
        std_writer.flush().expect("std flush");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            std::fs::read(&std_path).expect("read")
        );

        // BufReader<aiofs::File>: lines, then a seek and read_until, as std.
        let file = aiofs::File::open(&path).await.expect("open");
        let mut reader = tokio::io::BufReader::new(file);
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.expect("read_line") == 0 {
                break;
            }
            lines.push(line.trim_end_matches('\n').to_owned());
        }
        assert_eq!(lines, std_lines(&std_path));

        let mid = content.len() as u64 / 3;
        reader
            .seek(std::io::SeekFrom::Start(mid))
            .await
            .expect("seek");
        let mut ours = Vec::new();
        reader
            .read_until(b'\n', &mut ours)
            .await
            .expect("read_until");
        let mut std_reader = std::io::BufReader::new(std::fs::File::open(&std_path).expect("open"));
        std::io::Seek::seek(&mut std_reader, std::io::SeekFrom::Start(mid)).expect("std seek");
        let mut theirs = Vec::new();
        std_reader
            .read_until(b'\n', &mut theirs)
            .expect("std read_until");
        assert_eq!(ours, theirs);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_io_copy_between_two_aiofs_files() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, len) in [0usize, 1, 8191, 8192, 3 * 1024 * 1024 + 3]
            .into_iter()
            .enumerate()
        {
            let src = dir.path().join(format!("src{i}"));
            let dst = dir.path().join(format!("dst{i}"));
            let data = binary(10 + i as u64, len);
            std::fs::write(&src, &data).expect("write");
            let mut from = aiofs::File::open(&src).await.expect("open");
            let mut to = aiofs::File::create(&dst).await.expect("create");
            let copied = tokio::io::copy(&mut from, &mut to).await.expect("copy");
            to.sync_all().await.expect("sync_all");
            assert_eq!(copied, len as u64, "len {len}");
            // What std::fs::copy makes of the same file.
            let std_dst = dir.path().join(format!("std{i}"));
            std::fs::copy(&src, &std_dst).expect("std copy");
            assert_eq!(
                std::fs::read(&dst).expect("read"),
                std::fs::read(&std_dst).expect("read"),
                "len {len}"
            );
        }
    })
    .await;
}
