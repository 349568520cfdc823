//! Schema-driven fuzzing: schemathesis (from PyPI; `.ci/run` installs it)
//! generates requests for every operation of `/api/openapi.json` against the
//! real server, with a valid token of each role, and checks that nothing
//! answers 5xx, that every answer conforms to its documented schema and
//! content type, and that no status is undocumented.

use crate::helpers::*;

/// The `st` command: on PATH, else beside the Python that installed it.
fn st() -> std::path::PathBuf {
    let on_path = std::process::Command::new("st").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return "st".into();
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.join(os.path.dirname(os.path.realpath(sys.executable)), 'st'))",
        ])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_no_undocumented_status_and_no_schema_violation() {
    let app = spawn_app_with(&[
        ("HERALD_REST_RATE", "100000"),
        ("HERALD_REST_BURST", "100000"),
    ])
    .await;
    let schema = app.url("/api/openapi.json");
    for (sub, role, venue) in [
        ("alice", "agent", None),
        ("root", "admin", None),
        ("backend", "service", None),
        ("till", "cashier", Some("main")),
    ] {
        let token = token_with(SECRET, sub, role, 3600, venue);
        let out = std::process::Command::new(st())
            .args(["run", &schema])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--max-examples", "10", "--seed", "20261201"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "-c",
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
            ])
            // Its cache goes with the test's directory, not the repository.
            .current_dir(app.dir.path())
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis (`st`; pip install schemathesis) runs");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis with a {role} token found problems:\n{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("passed"), "{report}");
    }
    assert!(
        !app.log().contains("panicked"),
        "the server panicked:\n{}",
        app.log()
    );
}
