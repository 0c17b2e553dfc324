//! Turning a token stream into text: UTF-8 that may split across tokens, and stop
//! strings that may split across tokens. Pure; shared by every local engine.

/// Accumulates token bytes into text, finds stop strings, and says which text is
/// safe to emit (no character half-written, no possible stop-string start held).
#[derive(Debug, Default)]
pub(crate) struct TextAccumulator {
    pending: Vec<u8>,
    text: String,
    emitted: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl TextAccumulator {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Add a token's bytes. Returns the text now safe to emit; after a stop string
    /// is found, [`Self::stopped`] is true and the text ends before it.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.extend_from_slice(bytes);
        let before = self.text.len();
        self.decode_pending(false);
        // A stop string can only be found where new text touches it.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = before.saturating_sub(longest.saturating_sub(1));
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
            .min();
        if let Some(at) = hit {
            self.text.truncate(at);
            self.pending.clear();
            self.stopped = true;
            return self.take_until(at);
        }
        let safe = self.text.len() - self.held_suffix();
        self.take_until(safe)
    }

    /// Add text that bypasses stop checks (an end-of-generation token's text).
    pub(crate) fn push_final(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.decode_pending(true);
    }

    /// End of generation: everything not yet emitted.
    pub(crate) fn finish(&mut self) -> String {
        self.decode_pending(true);
        self.take_until(self.text.len())
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    fn take_until(&mut self, end: usize) -> String {
        if end <= self.emitted {
            return String::new();
        }
        let out = self.text[self.emitted..end].to_string();
        self.emitted = end;
        out
    }

    /// Length of the longest suffix of the text that could begin a stop string.
    fn held_suffix(&self) -> usize {
        let mut held = 0;
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                if i > held && self.text.ends_with(&stop[..i]) {
                    held = i;
                }
            }
        }
        held
    }

    fn decode_pending(&mut self, flush: bool) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.text
                        .push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None if !flush => {
                            self.pending.drain(..valid);
                            return;
                        }
                        None => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.clear();
                            return;
                        }
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TextAccumulator;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut acc = TextAccumulator::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            out.push(acc.push(p));
            if acc.stopped() {
                break;
            }
        }
        out.push(acc.finish());
        (out, acc.text().to_string(), acc.stopped())
    }

    #[test]
    fn multibyte_characters_split_across_tokens_are_never_cut() {
        let euro = "€".as_bytes();
        let (out, text, _) = run(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(text, "a€b");
        assert_eq!(out, vec!["a", "", "€", "b", ""]);
    }

    #[test]
    fn stop_string_across_tokens_ends_the_text_before_it() {
        let (out, text, stopped) = run(&["\nUser:"], &[b"Hi", b" there\nUs", b"er: more"]);
        assert!(stopped);
        assert_eq!(text, "Hi there");
        assert_eq!(out.concat(), "Hi there");
        assert_eq!(out[1], " there", "the possible stop start `\\nUs` is held back");
    }

    #[test]
    fn held_text_is_released_when_the_stop_does_not_come() {
        let (out, text, stopped) = run(&["STOP"], &[b"ST", b"ART"]);
        assert!(!stopped);
        assert_eq!(text, "START");
        assert_eq!(out, vec!["", "START", ""]);
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (_, text, _) = run(&["c", "b"], &[b"abc"]);
        assert_eq!(text, "a");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let (out, text, _) = run(&[], &[b"a\xffb", b"\xe2\x82"]);
        assert_eq!(text, "a\u{fffd}b\u{fffd}");
        assert_eq!(out.concat(), text);
    }
}
