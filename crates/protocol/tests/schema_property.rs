//! The decoder and the published JSON Schema agree: whatever the server's decoder accepts as
//! a method's params, the schema accepts too, so a client generated from the schema can send
//! anything our clients send (explicit nulls included). Checked on seeded random mutations of
//! real params, not on a serde round trip of our own output.

use exec_server_protocol::schema::protocol_schema;
use exec_server_protocol::{fs, http, initialize, process};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

fn decodes<T: DeserializeOwned>(value: &Value) -> bool {
    serde_json::from_value::<T>(value.clone()).is_ok()
}

/// Whether the server's decoder accepts `params` for `method`.
fn decoder_accepts(method: &str, params: &Value) -> bool {
    match method {
        "initialize" => decodes::<initialize::InitializeParams>(params),
        "process/start" => decodes::<process::StartParams>(params),
        "process/read" => decodes::<process::ReadParams>(params),
        "process/write" => decodes::<process::WriteParams>(params),
        "process/terminate" => decodes::<process::TerminateParams>(params),
        "process/signal" => decodes::<process::SignalParams>(params),
        "process/closeStdin" => decodes::<process::CloseStdinParams>(params),
        "process/list" => decodes::<process::ListParams>(params),
        "process/resize" => decodes::<process::ResizeParams>(params),
        "fs/readFile" => decodes::<fs::ReadFileParams>(params),
        "fs/writeFile" => decodes::<fs::WriteFileParams>(params),
        "fs/createDirectory" => decodes::<fs::CreateDirectoryParams>(params),
        "fs/getMetadata" => decodes::<fs::GetMetadataParams>(params),
        "fs/readDirectory" => decodes::<fs::ReadDirectoryParams>(params),
        "fs/remove" => decodes::<fs::RemoveParams>(params),
        "fs/copy" => decodes::<fs::CopyParams>(params),
        "fs/rename" => decodes::<fs::RenameParams>(params),
        "http/request" => decodes::<http::HttpRequestParams>(params),
        other => panic!("no decoder listed for {other}"),
    }
}

/// Real params for each method, as codex and our clients send them.
fn seeds() -> Vec<(&'static str, Value)> {
    let sandbox = json!({"sandboxPolicy": {"type": "workspace-write", "writable_roots": ["/w"],
        "read_only_access": {"type": "restricted", "include_platform_defaults": true, "readable_roots": []},
        "network_access": false, "exclude_tmpdir_env_var": false, "exclude_slash_tmp": false},
        "sandboxPolicyCwd": "/w", "windowsSandboxLevel": "disabled"});
    vec![
        (
            "initialize",
            json!({"clientName": "codex", "resumeSessionId": null}),
        ),
        (
            "process/start",
            json!({"processId": "1", "argv": ["bash", "-lc", "ls"], "cwd": "/w",
            "envPolicy": {"inherit": "all", "ignoreDefaultExcludes": true, "exclude": [], "set": {}, "includeOnly": []},
            "env": {"TERM": "dumb"}, "tty": false, "pipeStdin": false, "arg0": null}),
        ),
        (
            "process/read",
            json!({"processId": "1", "afterSeq": null, "maxBytes": null, "waitMs": 0}),
        ),
        ("process/write", json!({"processId": "1", "chunk": "aGkK"})),
        ("process/terminate", json!({"processId": "1"})),
        (
            "process/signal",
            json!({"processId": "1", "signal": "SIGINT"}),
        ),
        ("process/closeStdin", json!({"processId": "1"})),
        ("process/list", json!({})),
        (
            "process/resize",
            json!({"processId": "1", "rows": 40, "cols": 132}),
        ),
        (
            "fs/readFile",
            json!({"path": "/w/a", "sandbox": null, "offset": 0, "length": 10}),
        ),
        (
            "fs/writeFile",
            json!({"path": "file:///w/a", "dataBase64": "", "sandbox": sandbox, "append": true}),
        ),
        (
            "fs/createDirectory",
            json!({"path": "/w/d", "recursive": true, "sandbox": null}),
        ),
        (
            "fs/getMetadata",
            json!({"path": "/w/.git", "sandbox": null}),
        ),
        (
            "fs/readDirectory",
            json!({"path": "/w", "sandbox": {"sandboxPolicy": {"type": "danger-full-access"}, "windowsSandboxLevel": "disabled"}}),
        ),
        (
            "fs/remove",
            json!({"path": "/w/x", "recursive": null, "force": false}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": "/a", "destinationPath": "/b", "recursive": true}),
        ),
        (
            "fs/rename",
            json!({"sourcePath": "/a", "destinationPath": "/b"}),
        ),
        (
            "http/request",
            json!({"method": "POST", "url": "http://127.0.0.1:1/mcp",
            "headers": [{"name": "accept", "value": "text/event-stream"}], "bodyBase64": "e30=",
            "timeoutMs": null, "requestId": "http-1", "streamResponse": true}),
        ),
    ]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-7),
        4 => json!(u64::MAX),
        5 => json!(2.5),
        6 => json!(""),
        7 => json!("/abs/path"),
        8 => json!("relative"),
        9 => json!([]),
        10 => json!(["x"]),
        _ => json!({}),
    }
}

/// Changes one thing, anywhere in the value: a field's value, a missing field, an extra one.
fn mutate(value: &mut Value, rng: &mut Rng) {
    match value {
        Value::Object(map) if !map.is_empty() && rng.below(4) != 0 => {
            let key = map.keys().nth(rng.below(map.len())).unwrap().clone();
            match rng.below(4) {
                0 => {
                    map.remove(&key);
                }
                1 => mutate(map.get_mut(&key).unwrap(), rng),
                _ => {
                    map.insert(key, random_value(rng));
                }
            }
        }
        Value::Object(map) => {
            map.insert(format!("unknown{}", rng.below(3)), random_value(rng));
        }
        Value::Array(items) if !items.is_empty() && rng.below(2) == 0 => {
            let i = rng.below(items.len());
            mutate(&mut items[i], rng);
        }
        other => *other = random_value(rng),
    }
}

/// Whether `mutated` has an array where `seed` has an object (at any depth).
fn struct_given_as_array(seed: &Value, mutated: &Value) -> bool {
    match (seed, mutated) {
        (Value::Object(_), Value::Array(_)) => true,
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .any(|(k, v)| b.get(k).is_some_and(|w| struct_given_as_array(v, w))),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b.iter())
            .any(|(v, w)| struct_given_as_array(v, w)),
        _ => false,
    }
}

#[test]
fn every_params_the_decoder_accepts_the_schema_accepts() {
    let schema = protocol_schema();
    let methods = schema["x-methods"].as_object().expect("x-methods").clone();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    let mut checked = 0;
    for (method, seed) in seeds() {
        let params_ref = methods[method]["params"]["$ref"]
            .as_str()
            .unwrap()
            .to_owned();
        // A schema for just this method's params, resolving $refs against the whole document.
        let mut document = schema.clone();
        document["$ref"] = json!(params_ref);
        document.as_object_mut().unwrap().remove("anyOf");
        let validator = jsonschema::validator_for(&document).expect("the schema compiles");

        assert!(decoder_accepts(method, &seed), "{method}: seed must decode");
        assert!(
            validator.is_valid(&seed),
            "{method}: seed must validate: {seed}"
        );
        for _ in 0..400 {
            let mut params = seed.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut params, &mut rng);
            }
            if struct_given_as_array(&seed, &params) {
                // serde's derive accepts a struct written as a JSON array of its fields in
                // order; the schema (rightly) does not describe that form, and the server
                // rejects top-level params that are not an object before decoding.
                continue;
            }
            checked += 1;
            if decoder_accepts(method, &params) {
                accepted += 1;
                if let Err(error) = validator.validate(&params) {
                    panic!("{method}: the decoder accepts params the schema rejects ({error}):\n{params}");
                }
            }
        }
    }
    // The mutations must exercise both outcomes, or the property says nothing.
    assert!(
        accepted > checked / 10 && accepted < checked,
        "{accepted} of {checked} accepted"
    );
}

/// The definition a schema node stands for: `$ref`s resolved, and of an `Option`'s `anyOf`
/// the branch that is not `null`.
fn resolve<'a>(node: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = node["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(&schema["$defs"][name], schema);
    }
    if let Some(branches) = node["anyOf"].as_array() {
        if let Some(branch) = branches.iter().find(|b| b["type"] != "null") {
            if branches.len() == 2 {
                return resolve(branch, schema);
            }
        }
    }
    node
}

/// For an object `value` described by `node`, every path to an optional member (at any
/// depth where the schema names the object's members), with `value` at that path set to
/// `null`.
fn nulled_variants(
    value: &Value,
    node: &Value,
    schema: &Value,
    path: &str,
    out: &mut Vec<(String, Value)>,
) {
    let node = resolve(node, schema);
    let Value::Object(members) = value else {
        return;
    };
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let at = format!("{path}.{name}");
        if !required.contains(&name.as_str()) {
            let mut nulled = value.clone();
            nulled[name] = Value::Null;
            out.push((at.clone(), nulled));
        }
        if let Some(inner) = members.get(name) {
            let mut nested = Vec::new();
            nulled_variants(inner, property, schema, &at, &mut nested);
            for (where_, variant) in nested {
                let mut whole = value.clone();
                whole[name] = variant;
                out.push((where_, whole));
            }
        }
    }
}

/// Every optional field of every method's params accepts an explicit `null` (real clients
/// send them), at every depth the seeds reach: the top-level fields, `envPolicy`, the
/// `sandbox` object in both shapes.
#[test]
fn every_optional_field_accepts_null() {
    let schema = protocol_schema();
    let methods = schema["x-methods"].as_object().expect("x-methods").clone();
    let mut seeds = seeds();
    // Both shapes of `sandbox`, with every optional member present so each gets nulled.
    seeds.push((
        "fs/writeFile",
        json!({"path": "/w/a", "dataBase64": "aGk=", "offset": 0, "append": false,
            "sandbox": {"permissions": {"type": "managed", "network": "restricted",
                "file_system": {"type": "restricted", "glob_scan_max_depth": 3, "entries": [
                    {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}},
            "cwd": "/w", "workspaceRoots": ["/w"], "policyContext": {"cwd": "/w", "workspaceRoots": ["/w"]},
            "userHomeDir": "/home/u", "windowsSandboxLevel": "disabled",
            "windowsSandboxPrivateDesktop": false, "windowsSandboxProxySettingsMode": "reconcile",
            "useLegacyLandlock": false}}),
    ));
    seeds.push((
        "process/start",
        json!({"processId": "2", "argv": ["true"], "cwd": "/w", "envPolicy": null,
            "env": {}, "tty": false, "pipeStdin": false, "arg0": "x", "timeoutMs": 10,
            "enforceManagedNetwork": false, "managedNetwork": null, "networkProxy": null,
            "sandbox": {"sandboxPolicy": {"type": "read-only"}, "sandboxPolicyCwd": "/w",
                "fileSystemSandboxPolicy": null, "additionalPermissions": {"network": null,
                "file_system": {"read": ["/r"], "write": null}}}}),
    ));
    let mut checked = 0;
    for (method, seed) in seeds {
        let params = &methods[method]["params"];
        let mut variants = Vec::new();
        nulled_variants(&seed, params, &schema, method, &mut variants);
        for (path, variant) in variants {
            // `sandbox` needs exactly one of these two: nulling the one present leaves no
            // policy, which is refused on purpose (never read as "no sandbox").
            if path.ends_with("sandbox.sandboxPolicy") || path.ends_with("sandbox.permissions") {
                continue;
            }
            checked += 1;
            assert!(
                decoder_accepts(method, &variant),
                "{path} is optional, but an explicit null is refused:\n{variant}"
            );
        }
    }
    assert!(checked > 60, "only {checked} optional fields were checked");
}
