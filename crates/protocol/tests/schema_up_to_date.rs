//! `docs/protocol.schema.json` must match the types in this crate.
//!
//! Regenerate it with:
//! `UPDATE_SCHEMA=1 cargo test -p exec-server-protocol --test schema_up_to_date`

use std::path::PathBuf;

const REGENERATE: &str =
    "UPDATE_SCHEMA=1 cargo test -p exec-server-protocol --test schema_up_to_date";

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.schema.json")
}

#[test]
fn protocol_schema_is_up_to_date() {
    let path = schema_path();
    let expected = exec_server_protocol::schema::protocol_schema_string();

    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }

    let actual = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "cannot read {}: {e}\nGenerate it with: {REGENERATE}",
            path.display()
        ),
    };
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || actual.lines().count().min(expected.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} is out of date with the protocol types (first difference at line {line}).\n\
             Regenerate it with: {REGENERATE}",
            path.display()
        );
    }
}
