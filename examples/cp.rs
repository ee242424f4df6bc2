//! `cp`: copies one file with `aiofs::copy` (reads and writes in flight together).
//!
//! ```text
//! cargo run --example cp -- SOURCE DEST
//! ```

use std::path::Path;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to] = args.as_slice() else {
        eprintln!("usage: cp SOURCE DEST");
        return ExitCode::from(2);
    };
    let to = if Path::new(to).is_dir() {
        match Path::new(from).file_name() {
            Some(name) => Path::new(to).join(name),
            None => {
                eprintln!("cp: {from}: not a file name");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Path::new(to).to_owned()
    };
    match aiofs::metadata(from).await {
        Ok(m) if m.is_dir() => {
            eprintln!("cp: {from}: is a directory (not copied)");
            return ExitCode::FAILURE;
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("cp: cannot stat {from}: {}", describe(&e));
            return ExitCode::FAILURE;
        }
    }
    match aiofs::copy(from, &to).await {
        Ok(n) => {
            println!("{from} -> {}: {n} bytes", to.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cp: {from} -> {}: {}", to.display(), describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn describe(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
