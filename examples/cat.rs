//! `cat`: copies files to stdout through `AsyncRead` (read-ahead included).
//!
//! ```text
//! cargo run --example cat -- FILE...
//! ```

use std::process::ExitCode;

use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: cat FILE...");
        return ExitCode::from(2);
    }
    let mut stdout = tokio::io::stdout();
    let mut status = ExitCode::SUCCESS;
    for path in &paths {
        if let Err(e) = cat(path, &mut stdout).await {
            eprintln!("cat: {path}: {}", describe(&e));
            status = ExitCode::FAILURE;
        }
    }
    if let Err(e) = stdout.flush().await {
        eprintln!("cat: stdout: {e}");
        return ExitCode::FAILURE;
    }
    status
}

async fn cat(path: &str, out: &mut tokio::io::Stdout) -> std::io::Result<u64> {
    let mut file = aiofs::File::open(path).await?;
    tokio::io::copy(&mut file, out).await
}

/// The error as `cat` says it: "No such file or directory", "Is a directory".
fn describe(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
