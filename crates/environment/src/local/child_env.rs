//! The environment a child process starts with (`env` and `envPolicy`).

use exec_server_protocol::process::{EnvInherit, EnvPolicy};
use std::collections::BTreeMap;
use wildmatch::WildMatch;

/// Variables kept by `inherit: "core"`: the list the codex 0.123 exec-server keeps on Unix,
/// observed by running it (see `scripts/interop-codex.sh`).
const CORE_VARIABLES: &[&str] = &[
    "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "PATH", "SHELL", "TEMP", "TMP", "TMPDIR",
    "USER",
];

/// Names dropped unless `ignoreDefaultExcludes`: likely secrets.
const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// Builds the child environment.
///
/// Without a policy the child gets exactly `overlay`: nothing of the server's environment
/// leaks. With one, the policy is applied to `server_env` (inherit, default excludes,
/// `exclude`, `set`, `includeOnly`) and `overlay` is laid on top.
pub fn child_environment(
    policy: Option<&EnvPolicy>,
    overlay: &BTreeMap<String, String>,
    server_env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env = match policy {
        None => BTreeMap::new(),
        Some(policy) => apply_policy(policy, server_env),
    };
    env.extend(overlay.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

fn apply_policy(
    policy: &EnvPolicy,
    server_env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = match policy.inherit {
        EnvInherit::All => server_env.into_iter().collect(),
        EnvInherit::Core => server_env
            .into_iter()
            .filter(|(k, _)| CORE_VARIABLES.contains(&k.as_str()))
            .collect(),
        EnvInherit::None => BTreeMap::new(),
    };
    if !policy.ignore_default_excludes {
        let defaults = patterns(DEFAULT_EXCLUDES.iter().copied());
        env.retain(|k, _| !matches_any(&defaults, k));
    }
    let exclude = patterns(policy.exclude.iter().map(String::as_str));
    env.retain(|k, _| !matches_any(&exclude, k));
    env.extend(policy.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !policy.include_only.is_empty() {
        let include = patterns(policy.include_only.iter().map(String::as_str));
        env.retain(|k, _| matches_any(&include, k));
    }
    env
}

fn patterns<'a>(globs: impl Iterator<Item = &'a str>) -> Vec<WildMatch> {
    globs.map(WildMatch::new_case_insensitive).collect()
}

fn matches_any(patterns: &[WildMatch], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Vec<(String, String)> {
        [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("AWS_SECRET", "s"),
            ("my_api_key", "k"),
            ("LANG", "C"),
            ("FOO_BAR", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn overlay(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_policy_means_exactly_env() {
        let env = child_environment(None, &overlay(&[("A", "1")]), server());
        assert_eq!(env, overlay(&[("A", "1")]));
    }

    #[test]
    fn inherit_all_drops_default_excludes_case_insensitively() {
        let policy = EnvPolicy::default();
        let env = child_environment(Some(&policy), &BTreeMap::new(), server());
        assert!(env.contains_key("PATH") && env.contains_key("LANG"));
        assert!(!env.contains_key("AWS_SECRET"));
        assert!(!env.contains_key("my_api_key"));
    }

    #[test]
    fn full_pipeline_order() {
        let policy = EnvPolicy {
            inherit: EnvInherit::Core,
            ignore_default_excludes: true,
            exclude: vec!["h?me".into()],
            set: overlay(&[("SET1", "x"), ("OTHER", "y")]),
            include_only: vec!["set*".into(), "PATH".into()],
        };
        let env = child_environment(Some(&policy), &overlay(&[("PATH", "/over")]), server());
        assert_eq!(env, overlay(&[("PATH", "/over"), ("SET1", "x")]));
    }
}
