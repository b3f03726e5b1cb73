//! Absolute paths as they appear on the wire.

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// An absolute, lexically normalized path.
///
/// Accepts a native absolute path or a `file://` URI (`file:///a%20b`, `file://localhost/a`),
/// and normalizes `.` and `..` segments lexically at decode, as codex does. A relative path is
/// a decode error, which the server reports as -32602.
///
/// A path is bytes, not text. It keeps the form it was given in: one parsed from a `file://`
/// URI is sent as a URI (codex's current servers require them), a native one as a native
/// path, unless it is not valid UTF-8, which is always sent as a `file://` URI with its bytes
/// percent-encoded (as codex's `PathUri` does). Every path survives the trip through JSON
/// unchanged: never a lossy string, which would name another file. The form is not part of
/// the path's identity: a native path and the URI of the same bytes are equal.
#[derive(Clone)]
pub struct AbsolutePath {
    path: PathBuf,
    form: PathForm,
}

/// How a path travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PathForm {
    /// `/a/b`, as the April protocol has it.
    #[default]
    Native,
    /// `file:///a/b`, as codex's current protocol has it.
    FileUri,
}

impl PartialEq for AbsolutePath {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for AbsolutePath {}

impl std::hash::Hash for AbsolutePath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path.hash(state)
    }
}

impl PartialOrd for AbsolutePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AbsolutePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.path.cmp(&other.path)
    }
}

/// Why a string is not an acceptable absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError(String);

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PathError {}

impl AbsolutePath {
    /// Parses a wire path string (native path or `file://` URI).
    pub fn parse(s: &str) -> Result<AbsolutePath, PathError> {
        if let Some(rest) = s.strip_prefix("file://") {
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            if !rest.starts_with('/') {
                return Err(PathError(format!(
                    "file URI `{s}` must have an empty or `localhost` host and an absolute path"
                )));
            }
            let native =
                percent_decode(rest).map_err(|e| PathError(format!("file URI `{s}`: {e}")))?;
            return Ok(Self::from_path(&native)?.in_form(PathForm::FileUri));
        }
        Self::from_path(Path::new(s))
    }

    /// The same path, sent in `form`.
    pub fn in_form(mut self, form: PathForm) -> AbsolutePath {
        self.form = form;
        self
    }

    /// The form this path was given in.
    pub fn form(&self) -> PathForm {
        self.form
    }

    /// Normalizes an absolute native path; fails for a relative one.
    pub fn from_path(path: &Path) -> Result<AbsolutePath, PathError> {
        if !path.is_absolute() {
            return Err(PathError(format!(
                "path `{}` is not absolute; send an absolute path or a file:// URI",
                path.display()
            )));
        }
        let mut out = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Prefix(p) => out.push(p.as_os_str()),
                Component::RootDir => out.push(Component::RootDir.as_os_str()),
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(c) => out.push(c),
            }
        }
        Ok(AbsolutePath {
            path: out,
            form: PathForm::Native,
        })
    }

    pub fn as_path(&self) -> &Path {
        &self.path
    }

    pub fn into_path_buf(self) -> PathBuf {
        self.path
    }
}

fn percent_decode(s: &str) -> Result<PathBuf, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(out)
            .map(PathBuf::from)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Debug for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path, f)
    }
}

impl fmt::Display for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.path.display(), f)
    }
}

impl AsRef<Path> for AbsolutePath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for AbsolutePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// What a `file://` URI's path must escape: controls, space, non-ASCII bytes (so every byte
/// that is not UTF-8), `%` itself, and the characters that end or delimit a URI path.
const URI_PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl AbsolutePath {
    /// The path as a `file://` URI, every byte that needs it percent-encoded.
    pub fn to_file_uri(&self) -> String {
        #[cfg(unix)]
        let bytes = {
            use std::os::unix::ffi::OsStrExt;
            self.path.as_os_str().as_bytes()
        };
        #[cfg(not(unix))]
        let lossy = self.path.to_string_lossy();
        #[cfg(not(unix))]
        let bytes = lossy.as_bytes();
        format!(
            "file://{}",
            percent_encoding::percent_encode(bytes, URI_PATH_ESCAPES)
        )
    }
}

impl Serialize for AbsolutePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.form, self.path.to_str()) {
            (PathForm::Native, Some(text)) => serializer.serialize_str(text),
            _ => serializer.serialize_str(&self.to_file_uri()),
        }
    }
}

impl<'de> Deserialize<'de> for AbsolutePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AbsolutePath::parse(&s).map_err(de::Error::custom)
    }
}

impl JsonSchema for AbsolutePath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AbsolutePath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An absolute native path, or a file:// URI (percent-decoded to bytes). `..` is normalized lexically; relative paths are rejected. A path that is not UTF-8 is sent as a file:// URI with its bytes percent-encoded."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_native_and_file_uris() {
        assert_eq!(
            AbsolutePath::parse("/a/b").unwrap().as_path(),
            Path::new("/a/b")
        );
        assert_eq!(
            AbsolutePath::parse("file:///a%20b/c").unwrap().as_path(),
            Path::new("/a b/c")
        );
        assert_eq!(
            AbsolutePath::parse("file://localhost/x").unwrap().as_path(),
            Path::new("/x")
        );
    }

    #[test]
    fn normalizes_dot_dot_lexically() {
        assert_eq!(
            AbsolutePath::parse("/a/./b/../c").unwrap().as_path(),
            Path::new("/a/c")
        );
        assert_eq!(
            AbsolutePath::parse("/../..").unwrap().as_path(),
            Path::new("/")
        );
    }

    #[test]
    fn a_path_keeps_its_form_on_the_wire_but_not_in_its_identity() {
        let uri = AbsolutePath::parse("file:///w/a%20b").unwrap();
        let native = AbsolutePath::parse("/w/a b").unwrap();
        assert_eq!(uri, native);
        assert_eq!(uri.form(), PathForm::FileUri);
        assert_eq!(serde_json::to_string(&uri).unwrap(), r#""file:///w/a%20b""#);
        assert_eq!(serde_json::to_string(&native).unwrap(), r#""/w/a b""#);
        let round: AbsolutePath = serde_json::from_str(r#""file:///x/../y""#).unwrap();
        assert_eq!(serde_json::to_string(&round).unwrap(), r#""file:///y""#);
        let as_uri = native.clone().in_form(PathForm::FileUri);
        assert_eq!(
            serde_json::to_string(&as_uri).unwrap(),
            r#""file:///w/a%20b""#
        );
    }

    #[test]
    fn paths_that_are_not_utf8_survive_json() {
        use std::os::unix::ffi::OsStrExt;
        let path = AbsolutePath::parse("file:///w/n%FF%25%20x").unwrap();
        assert_eq!(path.as_os_str().as_bytes(), b"/w/n\xff% x");
        let json = serde_json::to_string(&path).unwrap();
        assert_eq!(json, r#""file:///w/n%FF%25%20x""#);
        let back: AbsolutePath = serde_json::from_str(&json).unwrap();
        assert_eq!(back, path);
        // UTF-8 paths stay native, `%` and all.
        let plain = AbsolutePath::parse("/w/100% é").unwrap();
        assert_eq!(serde_json::to_string(&plain).unwrap(), r#""/w/100% é""#);
    }

    #[test]
    fn rejects_relative_and_bad_uris() {
        assert!(AbsolutePath::parse("a/b").is_err());
        assert!(AbsolutePath::parse("").is_err());
        assert!(AbsolutePath::parse("file://host/x").is_err());
        assert!(AbsolutePath::parse("file:///a%2").is_err());
    }
}
