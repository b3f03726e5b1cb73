//! ssh's escape sequences on the keys typed into `run --tty` and `attach`: the escape
//! character (`~` by default) right after Enter, or as the very first key, starts a command
//! for the client itself instead of the remote terminal. `~.` disconnects, `~?` prints the
//! help, `~~` sends one `~`; anything else after the escape character is sent with it.
//!
//! The client acts on nothing else: every other byte, Ctrl-C and Ctrl-D included, goes to the
//! remote terminal unchanged. Text pasted in bracketed-paste mode (between `ESC [200~` and
//! `ESC [201~`) is never taken for an escape, so pasting a line that starts with `~.` does
//! not disconnect.

/// What the typed bytes mean, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Bytes for the remote terminal.
    Send(Vec<u8>),
    /// `~.`: leave, without waiting for the remote side.
    Disconnect,
    /// `~?`: show the escape sequences.
    Help,
}

const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

/// The help `~?` prints; `{e}` is the escape character.
pub fn help(escape: char) -> String {
    format!(
        "\r\nSupported escape sequences:\r\n \
         {escape}.   - disconnect (the command keeps running until its session expires; \
         `exec-server attach` resumes it)\r\n \
         {escape}?   - this message\r\n \
         {escape}{escape}   - send the escape character by typing it twice\r\n\
         (Note that escapes are only recognized immediately after newline.)\r\n"
    )
}

/// Splits typed input into bytes to send and escape commands. Keeps its state across reads,
/// since a sequence may be split between two of them.
pub struct EscapeScanner {
    escape: u8,
    /// The last byte sent ended a line (or nothing was sent yet).
    at_line_start: bool,
    /// The escape character was typed at a line start; the next byte decides what it means.
    escape_pending: bool,
    /// Inside a bracketed paste.
    pasting: bool,
    /// How many bytes of the paste marker being watched for (start or end) the input ended
    /// with.
    marker_matched: usize,
}

impl EscapeScanner {
    pub fn new(escape: u8) -> Self {
        EscapeScanner {
            escape,
            at_line_start: true,
            escape_pending: false,
            pasting: false,
            marker_matched: 0,
        }
    }

    /// What `input` means, in order. Bytes held back (an escape character waiting for the
    /// next key) come out with a later call.
    pub fn scan(&mut self, input: &[u8]) -> Vec<Typed> {
        let mut out = Vec::new();
        let mut send = Vec::with_capacity(input.len());
        for &byte in input {
            if self.escape_pending {
                self.escape_pending = false;
                match byte {
                    b'.' => {
                        flush(&mut send, &mut out);
                        out.push(Typed::Disconnect);
                        continue;
                    }
                    b'?' => {
                        flush(&mut send, &mut out);
                        out.push(Typed::Help);
                        continue;
                    }
                    b if b == self.escape => {
                        self.send_byte(byte, &mut send);
                        continue;
                    }
                    _ => self.send_byte(self.escape, &mut send),
                }
            } else if byte == self.escape && self.at_line_start && !self.pasting {
                self.escape_pending = true;
                continue;
            }
            self.send_byte(byte, &mut send);
        }
        flush(&mut send, &mut out);
        out
    }

    fn send_byte(&mut self, byte: u8, send: &mut Vec<u8>) {
        send.push(byte);
        self.at_line_start = byte == b'\r' || byte == b'\n';
        self.watch_paste_markers(byte);
    }

    fn watch_paste_markers(&mut self, byte: u8) {
        let marker = if self.pasting { PASTE_END } else { PASTE_START };
        if byte == marker[self.marker_matched] {
            self.marker_matched += 1;
        } else {
            // The markers start with ESC and hold no other ESC: a mismatch can only restart
            // the match at this byte.
            self.marker_matched = usize::from(byte == marker[0]);
        }
        if self.marker_matched == marker.len() {
            self.pasting = !self.pasting;
            self.marker_matched = 0;
            // After a paste, as after a pasted line: an escape needs a fresh line.
            self.at_line_start = false;
        }
    }
}

fn flush(send: &mut Vec<u8>, out: &mut Vec<Typed>) {
    if !send.is_empty() {
        out.push(Typed::Send(std::mem::take(send)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(bytes: &[u8]) -> Typed {
        Typed::Send(bytes.to_vec())
    }

    #[test]
    fn disconnect_at_the_start_and_after_enter() {
        assert_eq!(
            EscapeScanner::new(b'~').scan(b"~."),
            vec![Typed::Disconnect]
        );
        assert_eq!(
            EscapeScanner::new(b'~').scan(b"ls\r~."),
            vec![send(b"ls\r"), Typed::Disconnect]
        );
    }

    #[test]
    fn escape_only_at_a_line_start() {
        assert_eq!(EscapeScanner::new(b'~').scan(b"a~."), vec![send(b"a~.")]);
        assert_eq!(
            EscapeScanner::new(b'~').scan(b"\x03~."),
            vec![send(b"\x03~.")]
        );
    }

    #[test]
    fn double_escape_sends_one_and_other_keys_send_both() {
        let mut scanner = EscapeScanner::new(b'~');
        assert_eq!(scanner.scan(b"~~"), vec![send(b"~")]);
        // Not a line start any more.
        assert_eq!(scanner.scan(b"~."), vec![send(b"~.")]);
        assert_eq!(EscapeScanner::new(b'~').scan(b"~x"), vec![send(b"~x")]);
    }

    #[test]
    fn a_sequence_split_between_reads() {
        let mut scanner = EscapeScanner::new(b'~');
        assert_eq!(scanner.scan(b"pwd\r~"), vec![send(b"pwd\r")]);
        assert_eq!(scanner.scan(b"?"), vec![Typed::Help]);
        // Still at a line start after the help, as in ssh.
        assert_eq!(scanner.scan(b"~"), vec![]);
        assert_eq!(scanner.scan(b"."), vec![Typed::Disconnect]);
    }

    #[test]
    fn control_keys_pass_through() {
        let keys = b"\x03\x1a\x04\x1c\x1b[A\x1b[B";
        assert_eq!(EscapeScanner::new(b'~').scan(keys), vec![send(keys)]);
    }

    #[test]
    fn a_bracketed_paste_is_never_an_escape() {
        let mut scanner = EscapeScanner::new(b'~');
        let paste = b"\x1b[200~one\r~.\r\x1b[201~";
        assert_eq!(scanner.scan(paste), vec![send(paste)]);
        // The paste markers may be split between reads too.
        let mut scanner = EscapeScanner::new(b'~');
        assert_eq!(scanner.scan(b"\x1b[20"), vec![send(b"\x1b[20")]);
        assert_eq!(scanner.scan(b"0~\r~."), vec![send(b"0~\r~.")]);
        assert_eq!(
            scanner.scan(b"\x1b[201~\r~."),
            vec![send(b"\x1b[201~\r"), Typed::Disconnect]
        );
    }

    #[test]
    fn another_escape_character() {
        let mut scanner = EscapeScanner::new(b'%');
        assert_eq!(
            scanner.scan(b"~.\r%."),
            vec![send(b"~.\r"), Typed::Disconnect]
        );
    }
}
