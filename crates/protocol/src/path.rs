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
/// A path is bytes, not text. It is sent as a native path when it is valid UTF-8, and
/// otherwise as a `file://` URI with the bytes percent-encoded (as codex's `PathUri` does), so
/// every path survives the trip through JSON unchanged: never a lossy string, which would name
/// another file.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbsolutePath(PathBuf);

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
        let native = if let Some(rest) = s.strip_prefix("file://") {
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            if !rest.starts_with('/') {
                return Err(PathError(format!(
                    "file URI `{s}` must have an empty or `localhost` host and an absolute path"
                )));
            }
            percent_decode(rest).map_err(|e| PathError(format!("file URI `{s}`: {e}")))?
        } else {
            PathBuf::from(s)
        };
        Self::from_path(&native)
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
        Ok(AbsolutePath(out))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn into_path_buf(self) -> PathBuf {
        self.0
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
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.display(), f)
    }
}

impl AsRef<Path> for AbsolutePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for AbsolutePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
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
            self.0.as_os_str().as_bytes()
        };
        #[cfg(not(unix))]
        let lossy = self.0.to_string_lossy();
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
        match self.0.to_str() {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&self.to_file_uri()),
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
