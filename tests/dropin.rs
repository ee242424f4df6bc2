//! `use aiofs as fs;` is a drop-in for `use tokio::fs;`: one program, written
//! against a module named `fs` in `dropin/program.rs`, is compiled twice (once
//! per `fs`), run on both, and must report the same things.

/// A file's contents, compactly: length, a hash and the first bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub len: usize,
    pub fnv: u64,
    pub head: Vec<u8>,
}

/// Summarises `bytes` for a [`Report`].
pub fn content(bytes: &[u8]) -> Content {
    let mut fnv = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        fnv ^= u64::from(b);
        fnv = fnv.wrapping_mul(0x0100_0000_01b3);
    }
    Content {
        len: bytes.len(),
        fnv,
        head: bytes[..bytes.len().min(24)].to_vec(),
    }
}

/// What the program saw, in the order it saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Results of seeks and `stream_position`.
    pub positions: Vec<u64>,
    /// Lengths: metadata, counts read, copy results, line counts.
    pub lens: Vec<u64>,
    /// Whole files.
    pub contents: Vec<Content>,
    /// Short reads, verbatim.
    pub reads: Vec<Vec<u8>>,
    /// Lines and small text files.
    pub lines: Vec<String>,
    /// `Err(kind)` / `Ok(..)` of the calls expected to fail.
    pub errors: Vec<String>,
    pub modes: Vec<u32>,
    pub exists: Vec<bool>,
    /// The final directory: (name, is_dir, len), sorted.
    pub listing: Vec<(String, bool, u64)>,
}

mod with_tokio {
    use tokio::fs;
    include!("dropin/program.rs");
}

mod with_aiofs {
    use aiofs as fs;
    include!("dropin/program.rs");
}

/// Compares field by field, so that a failure names what differs.
fn assert_same(tokio: &Report, aiofs: &Report) {
    assert_eq!(aiofs.positions, tokio.positions, "positions");
    assert_eq!(aiofs.lens, tokio.lens, "lens");
    assert_eq!(aiofs.contents, tokio.contents, "contents");
    assert_eq!(aiofs.reads, tokio.reads, "reads");
    assert_eq!(aiofs.lines, tokio.lines, "lines");
    assert_eq!(aiofs.errors, tokio.errors, "errors");
    assert_eq!(aiofs.modes, tokio.modes, "modes");
    assert_eq!(aiofs.exists, tokio.exists, "exists");
    assert_eq!(aiofs.listing, tokio.listing, "listing");
    assert_eq!(aiofs, tokio);
}

async fn run_tokio() -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    with_tokio::run(dir.path())
        .await
        .expect("program on tokio::fs")
}

async fn run_aiofs() -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    with_aiofs::run(dir.path()).await.expect("program on aiofs")
}

#[tokio::test]
async fn same_report_on_current_thread() {
    let tokio = run_tokio().await;
    let aiofs = run_aiofs().await;
    assert_same(&tokio, &aiofs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_report_on_multi_thread_running_together() {
    let (tokio, aiofs) = tokio::join!(tokio::spawn(run_tokio()), tokio::spawn(run_aiofs()));
    assert_same(&tokio.expect("tokio task"), &aiofs.expect("aiofs task"));
}

/// The reference run itself says what the program is meant to see, so the
/// comparison cannot pass on two equally wrong reports.
#[tokio::test]
async fn the_report_says_what_the_program_did() {
    let report = run_aiofs().await;
    let log: String = (0..=40_000)
        .map(|i| format!("entry {i:05} {}\n", "=".repeat(i % 37)))
        .collect();
    let log = log.as_bytes();
    let log_len = log.len() as u64;
    let big_len = 3 * 1024 * 1024 + 4321u64;
    assert_eq!(
        report.positions,
        [
            log_len,
            log_len,
            6,
            8,
            log_len - 10,
            log_len,
            1_000_000,
            big_len - 5,
            big_len + 5,
            big_len + 5,
            103,
        ]
    );
    assert_eq!(
        report.lens,
        [
            log_len,
            log_len,
            0,
            40_001,
            log_len + 26,
            1_500_000,
            1_600_000,
        ]
    );
    assert_eq!(report.contents[0], content(log));
    assert_eq!(report.reads[0], &log[6..11]);
    assert_eq!(report.reads[0], b"00000");
    assert_eq!(report.reads[1], &log[8..13]);
    assert_eq!(report.reads[2], &log[log.len() - 10..]);
    assert_eq!(report.reads[3], &log[1_000_000..1_000_100]);
    assert!(report.reads[4].ends_with(b"appended one\nappended two\n"));
    // Across the cut of `set_len(1_500_000)` then `set_len(1_600_000)`.
    let big_byte = |i: usize| ((i * 7 + i / 251 + i / 65_521) % 256) as u8;
    let around: Vec<u8> = (1_499_990..1_500_000)
        .map(big_byte)
        .chain([0; 10])
        .collect();
    assert_eq!(report.reads[5], around);
    assert_eq!(report.lines[0], "entry 00000 ");
    assert_eq!(
        report.lines[1],
        format!("entry 40000 {}", "=".repeat(40_000 % 37))
    );
    assert_eq!(report.lines[2], "a note\nand another\n");
    assert_eq!(report.lines[3], "original;clone;");
    assert_eq!(
        report.contents[1],
        content(&(0..=255u8).collect::<Vec<u8>>())
    );
    let mut big: Vec<u8> = (0..big_len as usize).map(big_byte).collect();
    big[2_000_000..2_000_011].copy_from_slice(b"OVERWRITTEN");
    big.truncate(big.len() - 5);
    big.extend_from_slice(b"0123456789");
    assert_eq!(report.contents[2], content(&big));
    let mut copy = big[..1_500_000].to_vec();
    copy.resize(1_600_000, 0);
    assert_eq!(report.contents[3], content(&copy));
    let mut conv: Vec<u8> = (0..2_500_000).map(big_byte).collect();
    conv[100..104].copy_from_slice(b"xyz!");
    assert_eq!(report.contents[4], content(&conv));
    assert_eq!(report.modes, [0o640]);
    assert_eq!(report.exists, [false, false, true, true]);
    assert_eq!(
        report.errors,
        [
            "Err(InvalidInput)",
            "Err(InvalidData)",
            "Err(NotFound)",
            "Err(NotFound)",
            "Err(NotFound)",
            "Err(AlreadyExists)",
            "Err(NotFound)",
            "Err(NotFound)",
        ]
    );
    let names: Vec<&str> = report.listing.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "big.bin",
            "bytes.bin",
            "conv.bin",
            "copy.bin",
            "log.txt",
            "notes-renamed.txt",
            "shared.txt",
            "sub",
        ]
    );
}
