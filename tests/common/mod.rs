//! Helpers shared by integration tests (`mod common;`).

use std::process::Command;

/// Re-runs this test binary in a child process that runs only the test
/// `test`, with the environment variable `var` set, and returns what it
/// printed. Cross-process determinism tests compare that with a run in this
/// process.
pub fn rerun_in_child(test: &str, var: &str) -> String {
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, "1")
        .output()
        .expect("re-run the test binary");
    assert!(
        output.status.success(),
        "child test {test} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
