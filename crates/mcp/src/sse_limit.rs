//! A byte-level cap on the size of one SSE event, applied to a response body before it is
//! parsed. rmcp's own bounded parser is private to the crate, and a remote body can be
//! arbitrarily large, so a body that never ends an event must not grow the parser's buffer
//! without bound.

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// Counts the bytes of the event being received, the way an SSE parser retains them:
/// field lines count (plus the newline the parser joins them with), comment lines do not,
/// and a blank line ends the event. Lines end with LF, CR or CRLF.
#[derive(Debug)]
struct EventSizeCounter {
    max_size: usize,
    event_size: usize,
    line_size: usize,
    line_is_comment: bool,
    after_cr: bool,
}

impl EventSizeCounter {
    fn new(max_size: usize) -> Self {
        EventSizeCounter {
            max_size,
            event_size: 0,
            line_size: 0,
            line_is_comment: false,
            after_cr: false,
        }
    }

    /// Feeds a chunk; `false` once the current event is over the limit.
    fn observe(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    if self.line_size == 0 {
                        self.event_size = 0;
                    } else if !self.line_is_comment {
                        self.event_size = self.event_size.saturating_add(self.line_size + 1);
                    }
                    self.line_size = 0;
                    self.line_is_comment = false;
                }
                _ => {
                    if self.line_size == 0 {
                        self.line_is_comment = byte == b':';
                    }
                    self.line_size += 1;
                }
            }
            if self.event_size.saturating_add(self.line_size) > self.max_size {
                return false;
            }
        }
        true
    }
}

/// The SSE event in progress went over the configured maximum.
#[derive(Debug, thiserror::Error)]
#[error("SSE event exceeds the maximum size of {max_size} bytes")]
pub struct SseEventTooLarge {
    pub max_size: usize,
}

/// Passes `body` through until an event goes over `max_size` bytes, then yields one error
/// and ends (the rest of the body is not read).
pub fn limit_event_size<S, E>(
    body: S,
    max_size: usize,
) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: From<SseEventTooLarge> + Send + 'static,
{
    // The body is not polled again after the failure, so nothing more of it is buffered.
    body.scan(
        (EventSizeCounter::new(max_size), false),
        move |(counter, failed), chunk| {
            if *failed {
                return futures::future::ready(None);
            }
            let item = match chunk {
                Ok(chunk) if !counter.observe(&chunk) => {
                    *failed = true;
                    Err(SseEventTooLarge { max_size }.into())
                }
                other => other,
            };
            futures::future::ready(Some(item))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failure(String);

    impl From<SseEventTooLarge> for Failure {
        fn from(e: SseEventTooLarge) -> Self {
            Failure(e.to_string())
        }
    }

    async fn run(chunks: &[&str], max: usize) -> Vec<Result<String, Failure>> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, Failure>(Bytes::copy_from_slice(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        limit_event_size(body, max)
            .map(|r| r.map(|b| String::from_utf8(b.to_vec()).unwrap()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_within_the_limit_pass_whatever_the_chunking() {
        // Two 10-byte events ("data: abc" + newline), split mid-line and across CRLF.
        let out = run(&["data: a", "bc\r", "\n\r\ndata: abc\n", "\n"], 10).await;
        assert_eq!(out.concat_ok(), "data: abc\r\n\r\ndata: abc\n\n");
    }

    #[tokio::test]
    async fn comments_do_not_count_and_blank_lines_reset() {
        // The comment line plus the data line would be 17 bytes: only the data line counts.
        let out = run(&[": ping\n", "data: abc\n\n", "data: abc\n\n"], 10).await;
        assert!(out.iter().all(Result::is_ok), "{out:?}");
    }

    #[tokio::test]
    async fn an_oversized_event_fails_once_and_ends_the_stream() {
        let out = run(&["data: abc\n", "data: abc\n", "data: never read\n"], 15).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].is_ok());
        assert_eq!(
            out[1],
            Err(Failure(
                "SSE event exceeds the maximum size of 15 bytes".into()
            ))
        );
    }

    trait ConcatOk {
        fn concat_ok(&self) -> String;
    }

    impl ConcatOk for Vec<Result<String, Failure>> {
        fn concat_ok(&self) -> String {
            self.iter()
                .map(|r| r.as_ref().expect("no failure").as_str())
                .collect()
        }
    }
}
