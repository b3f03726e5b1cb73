//! The event log of one process: seq assignment, retained output, exit and close.
//!
//! Every event of a process gets the next seq from one counter. Output chunks are retained up
//! to a byte budget and evicted oldest first; the exit and close events are never evicted.
//! While a subscriber (the event stream handed out by `start`) is alive, chunks it has not
//! yet been given are never evicted, so an attached consumer loses nothing; the reader
//! instead waits when the subscriber falls too far behind (see `ProcessTable`).

use bytes::Bytes;
use exec_server_protocol::process::{OutputChunk, OutputStream, ReadResponse};
use exec_server_protocol::Base64Bytes;
use std::collections::VecDeque;

use crate::process::ProcessEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitInfo {
    pub seq: u64,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub sandbox_denied: bool,
}

#[derive(Debug)]
struct RetainedChunk {
    seq: u64,
    stream: OutputStream,
    bytes: Bytes,
}

#[derive(Debug)]
pub(crate) struct OutputLog {
    retained: VecDeque<RetainedChunk>,
    retained_bytes: usize,
    retention_limit: usize,
    next_seq: u64,
    /// Seq of the newest evicted chunk + 1, or 1 when nothing was evicted.
    first_retained_seq: u64,
    exit: Option<ExitInfo>,
    closed_seq: Option<u64>,
    open_streams: u8,
    /// The stdin writer still holds the pipe or terminal: close waits for it too, so that
    /// `closed` means the process holds nothing of ours any more.
    input_open: bool,
    /// Last seq handed to the live subscriber, if there is one.
    subscriber_cursor: Option<u64>,
}

impl OutputLog {
    /// A log for a process with `open_streams` output streams, and a stdin writer when
    /// `input_open`.
    pub fn new(retention_limit: usize, open_streams: u8, input_open: bool) -> Self {
        OutputLog {
            retained: VecDeque::new(),
            retained_bytes: 0,
            retention_limit,
            next_seq: 1,
            first_retained_seq: 1,
            exit: None,
            closed_seq: None,
            open_streams,
            input_open,
            subscriber_cursor: Some(0),
        }
    }

    pub fn exit(&self) -> Option<ExitInfo> {
        self.exit
    }

    pub fn open_streams(&self) -> u8 {
        self.open_streams
    }

    pub fn push_output(&mut self, stream: OutputStream, bytes: Bytes) {
        let seq = self.take_seq();
        self.retained_bytes += bytes.len();
        self.retained
            .push_back(RetainedChunk { seq, stream, bytes });
        self.evict();
    }

    pub fn record_exit(&mut self, exit_code: i32, signal: Option<i32>, sandbox_denied: bool) {
        debug_assert!(self.exit.is_none());
        let seq = self.take_seq();
        self.exit = Some(ExitInfo {
            seq,
            exit_code,
            signal,
            sandbox_denied,
        });
        self.maybe_close();
    }

    pub fn stream_ended(&mut self) {
        self.open_streams = self.open_streams.saturating_sub(1);
        self.maybe_close();
    }

    /// The stdin writer has let go of the pipe or terminal.
    pub fn input_ended(&mut self) {
        self.input_open = false;
        self.maybe_close();
    }

    fn maybe_close(&mut self) {
        if self.exit.is_some()
            && self.open_streams == 0
            && !self.input_open
            && self.closed_seq.is_none()
        {
            self.closed_seq = Some(self.take_seq());
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn evict(&mut self) {
        let protected_after = self.subscriber_cursor.unwrap_or(u64::MAX);
        while self.retained_bytes > self.retention_limit {
            match self.retained.front() {
                Some(front) if front.seq <= protected_after => {
                    let front = self.retained.pop_front().expect("front exists");
                    self.retained_bytes -= front.bytes.len();
                    self.first_retained_seq = front.seq + 1;
                }
                _ => break,
            }
        }
    }

    /// Bytes of output the subscriber has not been given yet.
    pub fn undelivered_bytes(&self) -> usize {
        match self.subscriber_cursor {
            None => 0,
            Some(cursor) => self
                .retained
                .iter()
                .rev()
                .take_while(|c| c.seq > cursor)
                .map(|c| c.bytes.len())
                .sum(),
        }
    }

    pub fn drop_subscriber(&mut self) {
        self.subscriber_cursor = None;
        self.evict();
    }

    /// The subscriber's next event after its cursor, advancing the cursor past it.
    pub fn next_for_subscriber(&mut self) -> Option<ProcessEvent> {
        let cursor = self.subscriber_cursor?;
        let event = self.event_after(cursor)?;
        let seq = event
            .seq()
            .expect("the local log only yields events with seqs");
        self.subscriber_cursor = Some(seq);
        self.evict();
        Some(event)
    }

    fn event_after(&self, cursor: u64) -> Option<ProcessEvent> {
        let want = cursor + 1;
        if want >= self.next_seq {
            return None;
        }
        if let Some(exit) = self.exit {
            if exit.seq == want {
                return Some(ProcessEvent::Exited {
                    seq: exit.seq,
                    exit_code: exit.exit_code,
                    signal: exit.signal,
                    sandbox_denied: exit.sandbox_denied,
                });
            }
        }
        if self.closed_seq == Some(want) {
            return Some(ProcessEvent::Closed { seq: want });
        }
        // Retained chunks are sorted by seq; the first one at or after `want` is next. (A
        // subscriber never meets an evicted chunk, because eviction spares what it has not
        // seen.)
        let idx = self.retained.partition_point(|c| c.seq < want);
        let chunk = self.retained.get(idx)?;
        Some(ProcessEvent::Output {
            seq: chunk.seq,
            stream: chunk.stream,
            chunk: chunk.bytes.clone(),
        })
    }

    /// Whether the retained output of any one stream contains one of `needles` (ASCII,
    /// lowercase), ignoring ASCII case. Chunks of a stream are joined first, so a needle
    /// split across two reads is still found.
    pub fn mentions_any(&self, needles: &[&str]) -> bool {
        [
            OutputStream::Stdout,
            OutputStream::Stderr,
            OutputStream::Pty,
        ]
        .into_iter()
        .any(|stream| {
            let text: Vec<u8> = self
                .retained
                .iter()
                .filter(|c| c.stream == stream)
                .flat_map(|c| c.bytes.iter().map(u8::to_ascii_lowercase))
                .collect();
            needles.iter().any(|needle| {
                text.windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            })
        })
    }

    /// Whether a read after `after_seq` would return something now.
    pub fn has_output_after(&self, after_seq: u64) -> bool {
        self.retained.back().is_some_and(|c| c.seq > after_seq)
    }

    pub fn read(&self, after_seq: u64, max_bytes: Option<u64>) -> ReadResponse {
        let start = self.retained.partition_point(|c| c.seq <= after_seq);
        let budget = max_bytes.unwrap_or(u64::MAX);
        let mut total: u64 = 0;
        let mut chunks = Vec::new();
        for c in self.retained.range(start..) {
            let len = c.bytes.len() as u64;
            if !chunks.is_empty() && total.saturating_add(len) > budget {
                break;
            }
            total = total.saturating_add(len);
            chunks.push(OutputChunk {
                seq: c.seq,
                stream: c.stream,
                chunk: Base64Bytes(c.bytes.clone()),
            });
            if total >= budget {
                break;
            }
        }
        let next_seq = chunks.last().map_or(self.next_seq, |c| c.seq + 1);
        ReadResponse {
            chunks,
            next_seq,
            exited: self.exit.is_some(),
            exit_code: self.exit.map(|e| e.exit_code),
            closed: self.closed_seq.is_some(),
            failure: None,
            first_retained_seq: Some(self.first_retained_seq),
            signal: self.exit.and_then(|e| e.signal),
            exited_seq: self.exit.map(|e| e.seq),
            closed_seq: self.closed_seq,
            sandbox_denied: self.exit.is_some_and(|e| e.sandbox_denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(log: &mut OutputLog, n: usize) {
        log.push_output(OutputStream::Stdout, Bytes::from(vec![b'x'; n]));
    }

    #[test]
    fn seqs_are_shared_by_output_exit_and_close() {
        let mut log = OutputLog::new(1024, 2, false);
        out(&mut log, 1);
        log.push_output(OutputStream::Stderr, Bytes::from_static(b"e"));
        log.record_exit(7, None, false);
        assert!(!log.read(0, None).closed);
        log.stream_ended();
        log.stream_ended();
        let mut events = vec![];
        while let Some(e) = log.next_for_subscriber() {
            events.push(e);
        }
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[2],
            ProcessEvent::Exited {
                seq: 3,
                exit_code: 7,
                signal: None,
                sandbox_denied: false
            }
        );
        assert_eq!(events[3], ProcessEvent::Closed { seq: 4 });
    }

    #[test]
    fn eviction_reports_first_retained_seq_and_spares_undelivered() {
        let mut log = OutputLog::new(10, 2, false);
        for _ in 0..5 {
            out(&mut log, 4);
        }
        // The subscriber has seen nothing, so nothing may be evicted yet.
        assert_eq!(log.read(0, None).first_retained_seq, Some(1));
        log.drop_subscriber();
        let r = log.read(0, None);
        // 5 chunks of 4 bytes under a 10-byte budget: the last two survive.
        assert_eq!(r.first_retained_seq, Some(4));
        assert_eq!(
            r.chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn mentions_any_joins_chunks_of_one_stream_and_ignores_case() {
        let mut log = OutputLog::new(1 << 20, 2, false);
        log.push_output(
            OutputStream::Stderr,
            Bytes::from_static(b"sh: /x: Read-only "),
        );
        log.push_output(OutputStream::Stdout, Bytes::from_static(b"unrelated"));
        log.push_output(OutputStream::Stderr, Bytes::from_static(b"File System\n"));
        assert!(log.mentions_any(&["read-only file system"]));
        assert!(!log.mentions_any(&["permission denied"]));
        // Not across streams: "unrelated" + "file" is not a word of either.
        assert!(!log.mentions_any(&["unrelatedfile"]));
    }

    #[test]
    fn max_bytes_never_splits_and_always_returns_one_chunk() {
        let mut log = OutputLog::new(1 << 20, 2, false);
        log.drop_subscriber();
        out(&mut log, 10);
        out(&mut log, 10);
        out(&mut log, 10);
        assert_eq!(log.read(0, Some(5)).chunks.len(), 1);
        assert_eq!(log.read(0, Some(20)).chunks.len(), 2);
        assert_eq!(log.read(0, Some(25)).chunks.len(), 2);
        assert_eq!(log.read(0, Some(25)).next_seq, 3);
        assert_eq!(log.read(3, Some(25)).next_seq, 4);
    }
}
