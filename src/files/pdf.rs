//! PDF text in a child process (`llmeta extract-pdf FILE`), because PDF parsers can panic, loop or eat
//! memory on hostile files: the child runs under an address-space and CPU limit and is killed after a
//! deadline; the server only reads its output.

use super::cancel::Cancel;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Address space the child may use.
pub const MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;
const MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// Runs the helper on `path` and returns at most `limit` bytes of its text, with `true` when there was more.
/// The child is killed as soon as that much has arrived, when `cancel` is set, or after [`TIMEOUT`].
pub fn extract(
    path: &Path,
    helper: &Path,
    limit: usize,
    cancel: &Cancel,
) -> Result<(String, bool), String> {
    let mut child = Command::new(helper)
        .arg("extract-pdf")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Never read: a pipe would fill up and stall the child.
        .stderr(Stdio::null())
        .env_clear()
        .spawn()
        .map_err(|_| "the PDF reader could not be started".to_string())?;
    // Killed and reaped on every way out of this function, including a panic.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            if matches!(self.0.try_wait(), Ok(None)) {
                let _ = self.0.kill();
            }
            let _ = self.0.wait();
        }
    }
    let mut stdout = child.stdout.take().ok_or("the PDF reader failed")?;
    let mut child = Reap(child);
    let want = (limit as u64 + 4).min(MAX_OUTPUT);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(want + 1).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let finished = loop {
        if reader.is_finished() {
            // All output read (the child has closed it or is about to exit), or the cap is reached.
            break None;
        }
        match child.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if cancel.is_cancelled() => return Err("cancelled".into()),
            Ok(None) if started.elapsed() > TIMEOUT => {
                return Err("reading the PDF took too long".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return Err("the PDF reader failed".into()),
        }
    };
    let mut out = reader.join().unwrap_or_default();
    let more = out.len() as u64 > want;
    if more {
        // Enough text: the rest is not needed, and the child would block on a full pipe.
        drop(child);
    } else {
        let status = match finished {
            Some(status) => status,
            None => loop {
                match child.0.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if cancel.is_cancelled() => return Err("cancelled".into()),
                    Ok(None) if started.elapsed() > TIMEOUT => {
                        return Err("reading the PDF took too long".into());
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(_) => return Err("the PDF reader failed".into()),
                }
            },
        };
        if !status.success() {
            return Err("the PDF could not be read (damaged, encrypted or unsupported)".into());
        }
    }
    out.truncate(want as usize);
    // A cut can split a character: keep the whole ones.
    if let Err(e) = std::str::from_utf8(&out)
        && e.error_len().is_none()
    {
        out.truncate(e.valid_up_to());
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    let cut = super::extract::cut_to(&mut text, limit);
    Ok((text, more || cut))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A stand-in for the helper: a shell script (the environment is cleared, so paths are absolute).
    fn helper(dir: &Path, script: &str) -> std::path::PathBuf {
        let path = dir.join("helper.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_reader_that_never_stops_writing_is_cut_at_the_cap_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let exe = helper(dir.path(), "exec /usr/bin/yes aaaaaaaa");
        let started = Instant::now();
        let (text, cut) = extract(Path::new("x.pdf"), &exe, 100_000, &Cancel::never()).unwrap();
        assert!(cut);
        assert_eq!(text.len(), 100_000);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn cancelling_kills_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let exe = helper(dir.path(), "exec /bin/sleep 60");
        let cancel = Cancel::new();
        let later = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            later.cancel();
        });
        let started = Instant::now();
        assert!(extract(Path::new("x.pdf"), &exe, 1000, &cancel).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_complete_short_output_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let exe = helper(dir.path(), "printf 'hello pdf'");
        let got = extract(Path::new("x.pdf"), &exe, 1000, &Cancel::never()).unwrap();
        assert_eq!(got, ("hello pdf".to_string(), false));
        let exe = helper(dir.path(), "exit 3");
        assert!(extract(Path::new("x.pdf"), &exe, 1000, &Cancel::never()).is_err());
    }
}
