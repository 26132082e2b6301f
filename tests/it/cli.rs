//! The binary itself: configuration errors, `migrate`, `admin create`, `check-config`.

use crate::helpers::*;
use reqwest::StatusCode;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The binary with a clean environment, pointed at `database_url`.
pub(crate) fn llmeta(dir: &tempfile::TempDir, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmeta"));
    cmd.env_clear()
        .env("LLMETA_DATA_DIR", dir.path())
        .env("DATABASE_URL", database_url)
        .env("LLMETA_LOG", "warn")
        .current_dir(dir.path());
    cmd
}

#[test]
fn an_invalid_setting_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("LLMETA_BIND", "not-an-address"),
        ("LLMETA_PUBLIC_URL", "example.com/path"),
        ("LLMETA_SECRET_KEY", "short"),
        ("LLMETA_SESSION_DAYS", "0"),
    ] {
        let out = llmeta(&dir, "sqlite://x.db")
            .env(var, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[test]
fn check_config_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmeta(&dir, "postgres://bob:hunter2@db.example/llmeta")
        .env("SECRET_KEY", "a-very-secret-value-that-is-long-enough")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bob:[redacted]@db.example"));
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("a-very-secret-value"));
}

#[test]
fn help_explains_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmeta(&dir, "sqlite://x.db")
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "admin", "check-config"] {
        assert!(text.contains(cmd), "{cmd}");
    }
}

#[tokio::test]
async fn migrate_twice_then_admin_create_then_login() {
    // Use the test app's database (SQLite file or fresh PostgreSQL database).
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = llmeta(&dir, &app.database_url)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut child = llmeta(&dir, &app.database_url)
        .args([
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let b = app.browser();
    assert_eq!(
        b.login("ops@example.com", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/admin").await.status(), StatusCode::OK);

    // A weak password is refused with the rule, and nothing is created.
    let mut child = llmeta(&dir, &app.database_url)
        .args([
            "admin",
            "create",
            "--email",
            "weak@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too common"));
}

#[tokio::test]
async fn user_commands_mirror_the_admin_area() {
    let app = app_with_admin().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = llmeta(&dir, &app.database_url);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(
        &[
            "user",
            "create",
            "--email",
            "cli@example.com",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&["user", "list"], None);
    assert!(
        ok && out.contains("cli@example.com") && out.contains("admin@example.com"),
        "{out}"
    );
    let (ok, out) = run(&["user", "set-admin", "--email", "cli@example.com"], None);
    assert!(ok && out.contains("is now admin"), "{out}");
    let (ok, out) = run(&["user", "deactivate", "--email", "cli@example.com"], None);
    assert!(ok && out.contains("deactivated"), "{out}");
    // The other admin is now the last active one.
    let (ok, out) = run(
        &["user", "set-admin", "--email", "admin@example.com", "--off"],
        None,
    );
    assert!(!ok && out.contains("last active administrator"), "{out}");
    let (ok, out) = run(&["user", "delete", "--email", "cli@example.com"], None);
    assert!(!ok && out.contains("--yes"), "{out}");
    let (ok, out) = run(
        &["user", "delete", "--email", "cli@example.com", "--yes"],
        None,
    );
    assert!(ok, "{out}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(app.db())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (ok, out) = run(
        &["user", "deactivate", "--email", "nobody@example.com"],
        None,
    );
    assert!(!ok && out.contains("no account"), "{out}");
}
