// A small "application" written once against a module named `fs`.
//
// `tests/dropin.rs` includes this file twice: once where `fs` is `tokio::fs`,
// once where it is `aiofs` (`use aiofs as fs;`). It must compile unchanged in
// both, and both runs must produce the same `Report`.
//
// Only behaviour that `tokio::fs` defines is used: every write is flushed before
// another handle (std, a clone, a new `File`) looks at the file.

use std::io::SeekFrom;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};

use super::{Report, content};

/// One line of the log file.
fn entry(i: usize) -> String {
    format!("entry {i:05} {}\n", "=".repeat(i % 37))
}

/// The byte `i` of the large binary file: no power-of-two period.
fn big_byte(i: usize) -> u8 {
    ((i * 7 + i / 251 + i / 65_521) % 256) as u8
}

/// Runs the application in `dir` (empty) and reports what it saw.
pub async fn run(dir: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    let data = dir.join("data").join("nested");
    fs::create_dir_all(&data).await?;
    fs::create_dir_all(&data).await?;

    // ----- a log written line by line, through a BufWriter and directly -----
    let log = data.join("log.txt");
    let file = fs::File::create(&log).await?;
    let mut writer = BufWriter::new(file);
    for i in 0..40_000 {
        writer.write_all(entry(i).as_bytes()).await?;
    }
    writer.flush().await?;
    let mut file = writer.into_inner();
    file.write_all(entry(40_000).as_bytes()).await?;
    file.flush().await?;
    report.positions.push(file.stream_position().await?);
    file.sync_all().await?;
    report.lens.push(file.metadata().await?.len());
    drop(file);

    // Read it whole, then seek around in it.
    let mut file = fs::File::open(&log).await?;
    let mut all = Vec::new();
    report.lens.push(file.read_to_end(&mut all).await? as u64);
    report.contents.push(content(&all));
    report.positions.push(file.stream_position().await?);
    report.positions.push(file.seek(SeekFrom::Start(6)).await?);
    let mut five = [0u8; 5];
    file.read_exact(&mut five).await?;
    report.reads.push(five.to_vec());
    report
        .positions
        .push(file.seek(SeekFrom::Current(-3)).await?);
    file.read_exact(&mut five).await?;
    report.reads.push(five.to_vec());
    report.positions.push(file.seek(SeekFrom::End(-10)).await?);
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).await?;
    report.reads.push(tail);
    let mut nothing = [0u8; 16];
    report.lens.push(file.read(&mut nothing).await? as u64);
    report.errors.push(format!(
        "{:?}",
        file.seek(SeekFrom::Current(-1_000_000_000))
            .await
            .map_err(|e| e.kind())
    ));
    report.positions.push(file.stream_position().await?);
    report
        .positions
        .push(file.seek(SeekFrom::Start(1_000_000)).await?);
    let mut buf = vec![0u8; 100];
    file.read_exact(&mut buf).await?;
    report.reads.push(buf);
    file.rewind().await?;
    let mut line_count = 0u64;
    let mut lines = BufReader::new(file).lines();
    let mut first = None;
    let mut last = String::new();
    while let Some(line) = lines.next_line().await? {
        line_count += 1;
        first.get_or_insert_with(|| line.clone());
        last = line;
    }
    report.lens.push(line_count);
    report.lines.push(first.unwrap_or_default());
    report.lines.push(last);

    // ----- append to it -----
    let mut file = fs::OpenOptions::new().append(true).open(&log).await?;
    file.write_all(b"appended one\n").await?;
    file.write_all(b"appended two\n").await?;
    file.flush().await?;
    drop(file);
    let after = fs::read(&log).await?;
    report.lens.push(after.len() as u64);
    report.reads.push(after[after.len() - 40..].to_vec());

    // ----- the whole-file functions -----
    let notes = data.join("notes.txt");
    fs::write(&notes, "a note\nand another\n").await?;
    report.lines.push(fs::read_to_string(&notes).await?);
    let bin = data.join("bytes.bin");
    fs::write(&bin, (0..=255u8).collect::<Vec<u8>>()).await?;
    report.contents.push(content(&fs::read(&bin).await?));
    let bad = data.join("bad.txt");
    fs::write(&bad, b"not \xff utf-8").await?;
    report.errors.push(format!(
        "{:?}",
        fs::read_to_string(&bad).await.map_err(|e| e.kind())
    ));
    report.errors.push(format!(
        "{:?}",
        fs::read(dir.join("missing")).await.map_err(|e| e.kind())
    ));
    report.errors.push(format!(
        "{:?}",
        fs::File::open(dir.join("missing"))
            .await
            .map(|_| ())
            .map_err(|e| e.kind())
    ));

    // ----- a large binary file: write-behind and read-ahead -----
    let big = data.join("big.bin");
    let big_data: Vec<u8> = (0..3 * 1024 * 1024 + 4321).map(big_byte).collect();
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&big)
        .await?;
    file.write_all(&big_data[..1_000_000]).await?;
    file.write_all(&big_data[1_000_000..]).await?;
    file.seek(SeekFrom::Start(2_000_000)).await?;
    file.write_all(b"OVERWRITTEN").await?;
    report.positions.push(file.seek(SeekFrom::End(-5)).await?);
    file.write_all(b"0123456789").await?;
    report.positions.push(file.stream_position().await?);
    file.rewind().await?;
    let mut back = Vec::new();
    file.read_to_end(&mut back).await?;
    report.contents.push(content(&back));
    file.set_len(1_500_000).await?;
    report.positions.push(file.stream_position().await?);
    report.lens.push(file.metadata().await?.len());
    file.set_len(1_600_000).await?;
    file.seek(SeekFrom::Start(1_499_990)).await?;
    let mut around = vec![0u8; 20];
    file.read_exact(&mut around).await?;
    report.reads.push(around);
    file.sync_data().await?;
    drop(file);

    // ----- copy, with its permissions -----
    fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o640)).await?;
    let copy = data.join("copy.bin");
    report.lens.push(fs::copy(&big, &copy).await?);
    report.contents.push(content(&fs::read(&copy).await?));
    report.modes.push(
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&copy).await?.permissions()) & 0o777,
    );
    report.errors.push(format!(
        "{:?}",
        fs::copy(dir.join("missing"), data.join("never"))
            .await
            .map_err(|e| e.kind())
    ));

    // ----- try_clone: the clone's writes are in the file after its flush -----
    let shared = data.join("shared.txt");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&shared)
        .await?;
    file.write_all(b"original;").await?;
    let mut clone = file.try_clone().await?;
    clone.seek(SeekFrom::End(0)).await?;
    clone.write_all(b"clone;").await?;
    clone.flush().await?;
    drop(clone);
    file.rewind().await?;
    let mut both = String::new();
    file.read_to_string(&mut both).await?;
    report.lines.push(both);
    drop(file);
    report.errors.push(format!(
        "{:?}",
        fs::File::create_new(&shared)
            .await
            .map(|_| ())
            .map_err(|e| e.kind())
    ));

    // ----- into_std: buffered writes are in, the offset is the position -----
    let conv = data.join("conv.bin");
    let mut file = fs::File::create(&conv).await?;
    file.write_all(&big_data[..2_500_000]).await?;
    file.seek(SeekFrom::Start(100)).await?;
    file.write_all(b"xyz").await?;
    let mut std_file = file.into_std().await;
    report
        .positions
        .push(std::io::Seek::stream_position(&mut std_file)?);
    std::io::Write::write_all(&mut std_file, b"!")?;
    drop(std_file);
    report.contents.push(content(&fs::read(&conv).await?));

    // ----- rename, remove, list -----
    fs::rename(&notes, data.join("notes-renamed.txt")).await?;
    fs::remove_file(&bad).await?;
    report.errors.push(format!(
        "{:?}",
        fs::remove_file(&bad).await.map_err(|e| e.kind())
    ));
    for path in [&notes, &bad, &log, &data.join("notes-renamed.txt")] {
        report.exists.push(fs::try_exists(path).await?);
    }
    report.errors.push(format!(
        "{:?}",
        fs::metadata(&notes).await.map(|_| ()).map_err(|e| e.kind())
    ));
    fs::create_dir_all(data.join("sub")).await?;
    let mut entries = fs::read_dir(&data).await?;
    while let Some(entry) = entries.next_entry().await? {
        let meta = entry.metadata().await?;
        let name = entry.file_name().to_string_lossy().into_owned();
        report.listing.push((
            name,
            meta.is_dir(),
            if meta.is_dir() { 0 } else { meta.len() },
        ));
    }
    report.listing.sort();
    Ok(report)
}
