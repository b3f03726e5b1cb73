//! The CPU cost of one `process/output` notification, without any I/O: what the server pays
//! to encode a chunk and what a client pays to decode it, through the protocol crate's own
//! code paths, next to a direct single-pass alternative (base64 written straight into the
//! message, and a borrowed single-pass parse). It bounds the pipes throughput from above on
//! one core, and shows how much of that is JSON string handling.

use crate::report::{Goal, Row, Value};
use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use exec_server_protocol::process::{OutputNotification, OutputStream};
use exec_server_protocol::{envelope, methods, Base64Bytes, Message};
use serde::Deserialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Chunk size the server reads at once (SPEC section 2).
const CHUNK: usize = 64 * 1024;

/// A notification built by hand: JSON around a base64 payload that never needs escaping.
fn direct_notification(process_id: &str, seq: u64, chunk: &[u8]) -> String {
    let id = serde_json::to_string(process_id).expect("a string serializes");
    let mut out = String::with_capacity(96 + id.len() + chunk.len().div_ceil(3) * 4);
    out.push_str(r#"{"method":"process/output","params":{"processId":"#);
    out.push_str(&id);
    out.push_str(r#","seq":"#);
    out.push_str(&seq.to_string());
    out.push_str(r#","stream":"stdout","chunk":""#);
    STANDARD.encode_string(chunk, &mut out);
    out.push_str(r#""}}"#);
    out
}

/// The current client path: envelope parse (params kept raw), then a typed parse.
fn decode_current(text: &str) -> anyhow::Result<Bytes> {
    match Message::parse(text).map_err(|e| anyhow::anyhow!("{e}"))? {
        Message::Notification {
            params: Some(params),
            ..
        } => {
            let n: OutputNotification = serde_json::from_str(params.get())?;
            Ok(n.chunk.into_bytes())
        }
        _ => bail!("not a notification"),
    }
}

/// One pass over the message, borrowing the base64 text, then one base64 decode.
fn decode_single_pass(text: &str) -> anyhow::Result<Bytes> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        method: &'a str,
        #[serde(borrow)]
        params: Params<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params<'a> {
        #[serde(borrow)]
        #[allow(dead_code)]
        process_id: std::borrow::Cow<'a, str>,
        #[allow(dead_code)]
        seq: u64,
        #[serde(borrow)]
        chunk: &'a str,
    }
    let envelope: Envelope<'_> = serde_json::from_str(text)?;
    ensure!(envelope.method == methods::PROCESS_OUTPUT, "not output");
    Ok(Bytes::from(STANDARD.decode(envelope.params.chunk)?))
}

/// Average time per call of `f` over `iterations` (after a short warm-up).
fn time_per_call(
    iterations: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    for _ in 0..iterations.div_ceil(10) {
        f()?;
    }
    let t = Instant::now();
    for _ in 0..iterations {
        f()?;
    }
    Ok(t.elapsed() / iterations as u32)
}

/// Encode and decode costs per 64 KiB chunk. Blocking: run it off the runtime.
pub fn codec_costs(iterations: usize) -> anyhow::Result<Vec<Row>> {
    // Output-like bytes: mostly text with some binary, not that base64 speed depends on it.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let chunk: Vec<u8> = (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let chunk = Bytes::from(chunk);
    let notification = OutputNotification {
        process_id: "bench-process".to_owned(),
        seq: 12345,
        stream: OutputStream::Stdout,
        chunk: Base64Bytes(chunk.clone()),
    };
    let current_text = envelope::notification(methods::PROCESS_OUTPUT, &notification);
    let direct_text = direct_notification(&notification.process_id, notification.seq, &chunk);
    // Both encodings must mean the same thing, and both decoders must recover the bytes.
    for text in [&current_text, &direct_text] {
        ensure!(decode_current(text).context("current decoder")? == chunk);
        ensure!(decode_single_pass(text).context("single-pass decoder")? == chunk);
    }

    let encode_current = time_per_call(iterations, || {
        black_box(envelope::notification(
            methods::PROCESS_OUTPUT,
            black_box(&notification),
        ));
        Ok(())
    })?;
    let encode_direct = time_per_call(iterations, || {
        black_box(direct_notification(
            &notification.process_id,
            notification.seq,
            black_box(&chunk),
        ));
        Ok(())
    })?;
    let base64_only = time_per_call(iterations, || {
        black_box(STANDARD.encode(black_box(&chunk[..])));
        Ok(())
    })?;
    let decode_now = time_per_call(iterations, || {
        black_box(decode_current(black_box(&current_text))?);
        Ok(())
    })?;
    let decode_single = time_per_call(iterations, || {
        black_box(decode_single_pass(black_box(&current_text))?);
        Ok(())
    })?;
    let utf8_check = time_per_call(iterations, || {
        black_box(std::str::from_utf8(black_box(current_text.as_bytes()))?);
        Ok(())
    })?;

    let rate = |d: Duration| Value::rate(CHUNK as u64, d);
    let mb_s = |d: Duration| CHUNK as f64 / d.as_secs_f64() / 1e6;
    Ok(vec![
        Row::new(
            "codec ceiling, server: encode process/output (1 core, no I/O)",
            rate(encode_current),
            Goal::None,
            "",
        )
        .with_note(format!(
            "{:.1} µs per 64 KiB chunk through envelope::notification; base64 alone {:.1} µs; \
             the same JSON built directly (base64 encoded straight into the message, no escape \
             scan) {:.1} µs = {:.0} MB/s",
            encode_current.as_secs_f64() * 1e6,
            base64_only.as_secs_f64() * 1e6,
            encode_direct.as_secs_f64() * 1e6,
            mb_s(encode_direct),
        )),
        Row::new(
            "codec ceiling, client: decode process/output (1 core, no I/O)",
            rate(decode_now),
            Goal::None,
            "",
        )
        .with_note(format!(
            "{:.1} µs per 64 KiB chunk through Message::parse then OutputNotification (the \
             payload is scanned twice, then base64-decoded); a single borrowed pass {:.1} µs = \
             {:.0} MB/s; the websocket layer's UTF-8 check adds {:.1} µs",
            decode_now.as_secs_f64() * 1e6,
            decode_single.as_secs_f64() * 1e6,
            mb_s(decode_single),
            utf8_check.as_secs_f64() * 1e6,
        )),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_encoding_matches_the_protocol_crate() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let n = OutputNotification {
            process_id: "id \"quoted\"".to_owned(),
            seq: 7,
            stream: OutputStream::Stdout,
            chunk: Base64Bytes::from(bytes.clone()),
        };
        let ours: serde_json::Value =
            serde_json::from_str(&direct_notification(&n.process_id, n.seq, &bytes)).unwrap();
        let theirs: serde_json::Value =
            serde_json::from_str(&envelope::notification(methods::PROCESS_OUTPUT, &n)).unwrap();
        assert_eq!(ours, theirs);
        let text = direct_notification(&n.process_id, n.seq, &bytes);
        assert_eq!(decode_single_pass(&text).unwrap(), bytes);
        assert_eq!(decode_current(&text).unwrap(), bytes);
    }
}
