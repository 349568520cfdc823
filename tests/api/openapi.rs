//! The OpenAPI document: valid 3.1, and it documents exactly the routes the
//! handlers declare (a new route without documentation fails here).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

/// The Rust files under `dir`, however deep.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(method, path)` the handlers declare under `/api`, read from the
/// route attributes in `src/http`.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"));
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines().map(str::trim) {
            for method in ["get", "post", "put", "delete"] {
                if let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) {
                    let path = rest.split('"').next().unwrap();
                    if path.starts_with("/api/") {
                        routes.insert((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_covers_every_route() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                statuses.iter().any(|s| s.starts_with('2')),
                "{method} {path}: no success answer"
            );
            if !path.starts_with("/api/openapi") && path != "/api/docs" {
                for status in ["400", "401", "429", "503"] {
                    let r = &op["responses"][status];
                    assert!(r.is_object(), "{method} {path}: {status} is not documented");
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let declared = declared_routes();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "routes without documentation: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "documented routes that do not exist: {stale:?}"
    );
    assert!(
        declared.len() >= 37,
        "the scan found the routes: {}",
        declared.len()
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // A validator of the OpenAPI 3.1 schema itself (installed by .ci/run).
    let path = app.dir.path().join("openapi.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator (pip install openapi-spec-validator): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_browsable_reference_is_served_from_the_binary() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"src="/js/api-docs.js""#), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no asset from the network: {page}"
    );
    assert!(csp.contains("script-src 'self'"));
    let script = app
        .http
        .get(app.url("/js/api-docs.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
}
