//! PDF text in a child process (`llmeta extract-pdf FILE`), because PDF parsers can panic, loop or eat
//! memory on hostile files: the child runs under an address-space and CPU limit and is killed after a
//! deadline; the server only reads its output.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Address space the child may use.
pub const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;
const MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// Runs the helper on `path` and returns the text.
pub fn extract(path: &Path, helper: &Path) -> Result<String, String> {
    let mut child = Command::new(helper)
        .arg("extract-pdf")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .spawn()
        .map_err(|_| "the PDF reader could not be started".to_string())?;
    let mut stdout = child.stdout.take().ok_or("the PDF reader failed")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("reading the PDF took too long".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return Err("the PDF reader failed".into()),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err("the PDF could not be read (damaged, encrypted or unsupported)".into());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The child's side: limit itself, parse, print the text. Exits non-zero on failure.
pub fn run_helper(path: &Path) -> i32 {
    let _ = rlimit::setrlimit(rlimit::Resource::AS, MEMORY_LIMIT, MEMORY_LIMIT);
    let _ = rlimit::setrlimit(
        rlimit::Resource::CPU,
        TIMEOUT.as_secs(),
        TIMEOUT.as_secs() + 1,
    );
    let Ok(bytes) = std::fs::read(path) else {
        return 2;
    };
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(&bytes));
    match result {
        Ok(Ok(text)) => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(text.as_bytes()).is_err() {
                return 2;
            }
            0
        }
        _ => 3,
    }
}
