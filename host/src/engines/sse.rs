//! Server-sent events, as remote APIs stream them: the framing only. What an
//! event's `data` means is the adapter's business.
//!
//! Lines end in `\n`, `\r\n` or `\r`; `data:` lines of one event are joined
//! with `\n`; a blank line ends the event; `event:`, `id:`, `retry:` and
//! comments (`:`) are read and dropped. Bytes may arrive cut anywhere, even
//! inside a UTF-8 character or between `\r` and `\n`.
//!
//! The stream is untrusted: a line or an event that never ends is cut off at
//! [`MAX_LINE_BYTES`] / [`MAX_EVENT_BYTES`] with an error, so the parser's
//! buffers stay bounded however long the server keeps sending.

/// Longest line accepted (a `data:` line holds one JSON chunk, rarely over a
/// few KiB; a whole answer in one event is still far under this).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Largest `data` of one event (all its `data:` lines joined).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// An incremental event-stream parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte fed was `\r`: a `\n` right after it ends nothing.
    after_cr: bool,
    /// `data` of the event being read, and whether it had a `data` field.
    data: String,
    has_data: bool,
}

/// A stream that is not valid UTF-8, or a line or event over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream {0}")]
pub struct SseError(String);

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the `data` of every event they completed, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.end_line(&line)? {
                        events.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(SseError(format!("has a line over the limit of {MAX_LINE_BYTES} bytes")));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(events)
    }

    /// The end of the stream: an event cut off without its blank line still
    /// counts when it has data (servers that close right after the last event).
    pub fn finish(mut self) -> Result<Option<String>, SseError> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            if let Some(event) = self.end_line(&line)? {
                return Ok(Some(event));
            }
        }
        Ok(self.has_data.then_some(self.data))
    }

    fn end_line(&mut self, line: &[u8]) -> Result<Option<String>, SseError> {
        if line.is_empty() {
            if !self.has_data {
                return Ok(None);
            }
            self.has_data = false;
            return Ok(Some(std::mem::take(&mut self.data)));
        }
        let line = std::str::from_utf8(line).map_err(|e| SseError(format!("is not valid UTF-8 ({e})")))?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            if self.data.len() + 1 + value.len() > MAX_EVENT_BYTES {
                return Err(SseError(format!(
                    "has an event over the limit of {MAX_EVENT_BYTES} bytes"
                )));
            }
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(stream: &[u8]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = p.feed(stream).unwrap();
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn frames_events_whatever_the_line_endings() {
        let stream = b": comment\nevent: message_start\ndata: {\"a\":1}\n\ndata:x\r\ndata: y\r\n\r\nid: 3\nretry: 10\n\ndata: last\r\r";
        assert_eq!(all(stream), ["{\"a\":1}", "x\ny", "last"]);
    }

    #[test]
    fn the_same_events_however_the_bytes_are_cut() {
        let stream = "data: héllo\r\n\r\ndata: {\"t\":\"日本\"}\n\ndata: [DONE]\n\n".as_bytes();
        let whole = all(stream);
        assert_eq!(whole, ["héllo", "{\"t\":\"日本\"}", "[DONE]"]);
        for cut in 0..stream.len() {
            let mut p = SseParser::new();
            let mut out = p.feed(&stream[..cut]).unwrap();
            out.extend(p.feed(&stream[cut..]).unwrap());
            out.extend(p.finish().unwrap());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn unterminated_last_event_counts_and_bad_utf8_is_an_error() {
        assert_eq!(all(b"data: a\n\ndata: b"), ["a", "b"]);
        assert!(all(b"event: x\n").is_empty());
        let mut p = SseParser::new();
        assert!(p.feed(b"data: \xff\xfe\n\n").is_err());
    }

    #[test]
    fn a_line_or_event_that_never_ends_hits_a_limit() {
        // One line, fed in 1 MiB chunks, never ended.
        let mut p = SseParser::new();
        let chunk = vec![b'x'; 1 << 20];
        let err = (0..64).find_map(|_| p.feed(&chunk).err()).expect("a limit");
        assert!(err.to_string().contains("line over the limit"), "{err}");
        assert!(p.line.capacity() <= 2 * MAX_LINE_BYTES);
        // Short `data:` lines of one event, never ended by a blank line.
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(1 << 16));
        let err = (0..1024).find_map(|_| p.feed(line.as_bytes()).err()).expect("a limit");
        assert!(err.to_string().contains("event over the limit"), "{err}");
        assert!(p.data.len() <= MAX_EVENT_BYTES);
        // Just under both limits is fine.
        let mut p = SseParser::new();
        let big = format!("data: {}\n\n", "z".repeat(MAX_LINE_BYTES - 6));
        assert_eq!(p.feed(big.as_bytes()).unwrap()[0].len(), MAX_LINE_BYTES - 6);
    }
}
