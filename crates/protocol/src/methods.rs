//! Method and notification names.

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "initialized";

pub const PROCESS_START: &str = "process/start";
pub const PROCESS_READ: &str = "process/read";
pub const PROCESS_WRITE: &str = "process/write";
pub const PROCESS_TERMINATE: &str = "process/terminate";
pub const PROCESS_SIGNAL: &str = "process/signal";
pub const PROCESS_CLOSE_STDIN: &str = "process/closeStdin";
pub const PROCESS_LIST: &str = "process/list";
pub const PROCESS_RESIZE: &str = "process/resize";
pub const PROCESS_OUTPUT: &str = "process/output";
pub const PROCESS_EXITED: &str = "process/exited";
pub const PROCESS_CLOSED: &str = "process/closed";

pub const FS_READ_FILE: &str = "fs/readFile";
pub const FS_WRITE_FILE: &str = "fs/writeFile";
pub const FS_CREATE_DIRECTORY: &str = "fs/createDirectory";
pub const FS_GET_METADATA: &str = "fs/getMetadata";
pub const FS_READ_DIRECTORY: &str = "fs/readDirectory";
pub const FS_REMOVE: &str = "fs/remove";
pub const FS_COPY: &str = "fs/copy";
pub const FS_RENAME: &str = "fs/rename";

pub const HTTP_REQUEST: &str = "http/request";
pub const HTTP_REQUEST_BODY_DELTA: &str = "http/request/bodyDelta";

/// The capability family a method belongs to, as named in gating error messages
/// ("client must call initialize before using exec methods").
pub fn family(method: &str) -> Option<&'static str> {
    if method.starts_with("process/") {
        Some("exec")
    } else if method.starts_with("fs/") {
        Some("filesystem")
    } else if method.starts_with("http/") {
        Some("http")
    } else {
        None
    }
}

/// Every request method this protocol defines (including additions).
pub const REQUESTS: &[&str] = &[
    INITIALIZE,
    PROCESS_START,
    PROCESS_READ,
    PROCESS_WRITE,
    PROCESS_TERMINATE,
    PROCESS_SIGNAL,
    PROCESS_CLOSE_STDIN,
    PROCESS_LIST,
    PROCESS_RESIZE,
    FS_READ_FILE,
    FS_WRITE_FILE,
    FS_CREATE_DIRECTORY,
    FS_GET_METADATA,
    FS_READ_DIRECTORY,
    FS_REMOVE,
    FS_COPY,
    FS_RENAME,
    HTTP_REQUEST,
];

/// The static name of a known request method, for labels that must not grow with
/// whatever names clients send.
pub fn known_request(method: &str) -> Option<&'static str> {
    REQUESTS.iter().copied().find(|m| *m == method)
}
