//! Keeps `openapi/articles.openapi.json` equal to the document the gateway builds now.
//!
//! The committed file is what API consumers (client generators, reviewers reading a diff) see;
//! the gateway serves a document built at start from the descriptors. This test fails when the
//! two differ, e.g. after a proto change, and says how to regenerate the file. The document is
//! the `articles-gateway` binary's own `openapi` output: the article defaults are the binary's.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/articles.openapi.json")
}

#[test]
fn committed_openapi_document_is_up_to_date() {
    // No --reflect: the binary reaches no backend, it prints the embedded API's document.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
        .arg("openapi")
        .output()
        .expect("articles-gateway openapi runs");
    assert!(
        output.status.success(),
        "articles-gateway openapi failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let now = String::from_utf8(output.stdout).expect("the document is UTF-8");
    let path = committed_path();

    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        if let Err(e) = std::fs::write(&path, &now) {
            panic!("cannot write {}: {e}", path.display());
        }
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != now {
        let first_difference = committed
            .lines()
            .zip(now.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(now.lines().count()));
        panic!(
            "{} is out of date with the proto (first difference at line {}).\n\
             Regenerate it with\n\
             \n    cargo run -p articles-gateway -- openapi > openapi/articles.openapi.json\n\
             \nor, without the binary,\n\
             \n    UPDATE_OPENAPI=1 cargo test -p articles-gateway --test openapi openapi_drift\n\
             \nand commit the result.",
            path.display(),
            first_difference + 1,
        );
    }
}
