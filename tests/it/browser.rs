//! Drives headless Chromium (tests/browser/smoke.mjs) against a running app: streaming, Stop, inert hostile
//! output, first-run set-up, sign-up, login and logout. CI sets LLMETA_BROWSER_TESTS=1 and installs Chromium
//! and playwright-core; elsewhere the test is skipped when they are missing.

use crate::helpers::*;
use std::path::Path;

#[tokio::test]
async fn the_app_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let required = std::env::var("LLMETA_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).exists() && dir.join("node_modules/playwright-core").exists();
    if !ready {
        assert!(
            !required,
            "LLMETA_BROWSER_TESTS=1 but Chromium or tests/browser/node_modules is missing"
        );
        eprintln!("skipping the browser test: install chromium and run `npm ci` in tests/browser");
        return;
    }
    let mock = spawn_mock().await;
    let base = mock.clone();
    let app = spawn_app_with(move |c| {
        c.providers = vec![mock_provider("mock", &base)];
        c.models = vec![mock_model("mock", "mock", 8192)];
        c.demo = true;
    })
    .await;
    let shots = std::env::var("LLMETA_SCREENSHOTS").unwrap_or_default();
    let url = app.base.clone();
    // A stuck browser fails the test instead of hanging CI.
    let node = tokio::process::Command::new("node")
        .arg(dir.join("smoke.mjs"))
        .arg(url)
        .arg(shots)
        .env("CHROMIUM", chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), node)
        .await
        .expect("the browser checks finish within 5 minutes")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser checks passed"));
}
