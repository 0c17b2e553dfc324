//! The lexer pre-pass: the few places where Hugging Face templates rely on
//! Python's jinja2 lexing and minijinja offers no hook. Each rewrite keeps the
//! line count, so error lines still point into the template as written.
//!
//! - **Newlines**: jinja2 turns `\r\n` and `\r` into `\n` everywhere (data and
//!   string literals); so does this pass.
//! - **String literals** are decoded by jinja2 with Python's `unicode-escape`:
//!   a backslash before a newline is a line continuation (both vanish; seen in
//!   Mistral-Small-3.1's default system prompt), `\/` stays `\/`, `\a` and `\v`
//!   are BEL and VT, and `\UXXXXXXXX` is one code point. minijinja's unescaping
//!   differs on exactly these, so they are rewritten into spellings both read the
//!   same way (a continuation becomes two adjacent literals on two lines, which
//!   both dialects concatenate).
//! - **`{% generation %}…{% endgeneration %}`**, transformers' assistant-mask
//!   tag, renders its body; it becomes `{% if true %}…{% endif %}` with the same
//!   whitespace-control marks, so `trim_blocks`/`lstrip_blocks` act as on the
//!   original tag.
//!
//! - **`{% for x in none %}`** is a `TypeError` in jinja2 and an empty loop in
//!   minijinja (which iterates none like undefined). The iterable of every `for`
//!   goes through a filter that fails on none: `for x in (xs)|<filter>`.
//!
//! Comments and `{% raw %}` blocks are copied untouched. What needs tokens
//! rather than text (attribute lookup, markup's `+`) is `operators.rs`, run
//! on this pass's output. minijinja has no
//! lexer or extension hook for any of these (its syntax is fixed and its string
//! unescaping is internal), which is why this is a text pass and not a setting.

use std::borrow::Cow;

/// The filter every `for` loop's iterable goes through (see the module doc).
pub const ITERABLE_FILTER: &str = "__lmhost_iterable";

/// The template as minijinja must see it to render as jinja2 does.
pub fn preprocess(source: &str) -> Cow<'_, str> {
    let normalized: Cow<'_, str> = if source.contains('\r') {
        Cow::Owned(source.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(source)
    };
    if !normalized.contains("{%") && !normalized.contains("{{") {
        return normalized;
    }
    let text = rewrite(&normalized);
    // Then the token pass (`operators.rs`), on what minijinja will read.
    match crate::operators::rewrite(&text) {
        Cow::Borrowed(_) => Cow::Owned(text),
        Cow::Owned(rewritten) => Cow::Owned(rewritten),
    }
}

fn rewrite(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        let Some(open) = find_open(bytes, i) else {
            out.push_str(&src[i..]);
            break;
        };
        out.push_str(&src[i..open]);
        match bytes[open + 1] {
            b'#' => {
                let end = src[open + 2..].find("#}").map_or(src.len(), |p| open + 2 + p + 2);
                out.push_str(&src[open..end]);
                i = end;
            }
            kind => {
                let close = if kind == b'{' { b'}' } else { b'%' };
                let end = tag_end(bytes, open + 2, close);
                let tag = &src[open..end];
                if kind == b'%' {
                    let word = tag_word(tag);
                    if word == Some("raw") {
                        let stop = find_endraw(src, end).unwrap_or(src.len());
                        out.push_str(&src[open..stop]);
                        i = stop;
                        continue;
                    }
                    if let Some(replacement) = match word {
                        Some("generation") => Some("if true"),
                        Some("endgeneration") => Some("endif"),
                        _ => None,
                    } {
                        let at = tag.find(word.unwrap_or_default()).unwrap_or(0);
                        out.push_str(&tag[..at]);
                        out.push_str(replacement);
                        out.push_str(&tag[at + word.unwrap_or_default().len()..]);
                        i = end;
                        continue;
                    }
                }
                match (kind == b'%').then(|| rewrite_for(tag)).flatten() {
                    Some(rewritten) => rewrite_strings(&rewritten, &mut out),
                    None => rewrite_strings(tag, &mut out),
                }
                i = end;
            }
        }
    }
    out
}

/// The next `{{`, `{%` or `{#` at or after `from`.
fn find_open(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < bytes.len() {
        if bytes[i] == b'{' && matches!(bytes[i + 1], b'{' | b'%' | b'#') {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The end (exclusive) of a tag whose body starts at `from`: the first
/// `close` + `}` outside string literals and braces; the end of the source if
/// the tag never closes (the parser then reports it).
fn tag_end(bytes: &[u8], from: usize, close: u8) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => i = string_end(bytes, i + 1, q),
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' if close == b'}' && depth == 0 && bytes.get(i + 1) == Some(&b'}') => return i + 2,
            b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c == close && close == b'%' && bytes.get(i + 1) == Some(&b'}') => return i + 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Just past the closing quote of a literal whose body starts at `from`.
fn string_end(bytes: &[u8], from: usize, quote: u8) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The statement name of a `{% … %}` tag (`raw`, `generation`, …).
fn tag_word(tag: &str) -> Option<&str> {
    let inner = tag.strip_prefix("{%")?.strip_suffix("%}")?;
    let inner = inner.trim_start_matches(['-', '+']).trim_end_matches(['-', '+']).trim();
    (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_alphabetic())).then_some(inner)
}

/// A `{% for … in EXPR [if …] [recursive] %}` tag with its iterable wrapped:
/// `in(EXPR)|filter` (newlines kept in place). `None` for other tags. The
/// iterable ends at the first top-level `if` or `recursive`, as jinja2's
/// parser ends it.
fn rewrite_for(tag: &str) -> Option<String> {
    let inner = tag.strip_prefix("{%")?.strip_suffix("%}")?;
    let lead = inner.len() - inner.trim_start_matches(['-', '+']).len();
    let body_end = inner.trim_end_matches(['-', '+']).len();
    if body_end < lead {
        return None;
    }
    // All ASCII around the body: these are character boundaries.
    let (open, close) = (2 + lead, 2 + body_end);
    let body = tag.get(open..close)?;
    let words = top_level_words(body);
    let first = words.first()?;
    if &body[first.0..first.1] != "for" {
        return None;
    }
    let in_word = words.iter().find(|w| &body[w.0..w.1] == "in")?;
    let end = words
        .iter()
        .find(|w| w.0 > in_word.1 && matches!(&body[w.0..w.1], "if" | "recursive"))
        .map_or(body.trim_end().len(), |w| w.0);
    if end <= in_word.1 || body[in_word.1..end].trim().is_empty() {
        return None;
    }
    Some(format!(
        "{}{}({}){}{ITERABLE_FILTER} {}{}",
        &tag[..open],
        &body[..in_word.1],
        &body[in_word.1..end],
        "|",
        &body[end..],
        &tag[close..]
    ))
}

/// The identifier words of a tag body outside string literals and brackets,
/// as byte ranges.
fn top_level_words(body: &str) -> Vec<(usize, usize)> {
    let bytes = body.as_bytes();
    let mut words = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => i = string_end(bytes, i + 1, q),
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let after_dot = start > 0 && bytes[start - 1] == b'.';
                if depth == 0 && !after_dot {
                    words.push((start, i));
                }
            }
            _ => i += 1,
        }
    }
    words
}

/// The end (exclusive) of the `{% endraw %}` tag after `from`.
fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = from;
    while let Some(open) = find_open(bytes, i) {
        if bytes[open + 1] == b'%' {
            let end = tag_end(bytes, open + 2, b'%');
            if tag_word(&src[open..end]) == Some("endraw") {
                return Some(end);
            }
        }
        i = open + 2;
    }
    None
}

/// Copy `tag`, rewriting the escapes of its string literals that jinja2 and
/// minijinja read differently.
fn rewrite_strings(tag: &str, out: &mut String) {
    let bytes = tag.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let quote = bytes[i];
        if quote != b'\'' && quote != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(bytes, i + 1, quote);
        out.push_str(&tag[copied..i]);
        rewrite_literal(&tag[i..end], quote as char, out);
        copied = end;
        i = end;
    }
    out.push_str(&tag[copied..]);
}

fn rewrite_literal(literal: &str, quote: char, out: &mut String) {
    let mut chars = literal.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, d)| d) {
            // Line continuation: close the literal, keep the newline, reopen.
            Some('\n') => {
                chars.next();
                out.push(quote);
                out.push('\n');
                out.push(quote);
            }
            Some('/') => {
                chars.next();
                out.push_str("\\\\/");
            }
            Some('a') => {
                chars.next();
                out.push_str("\\x07");
            }
            Some('v') => {
                chars.next();
                out.push_str("\\x0b");
            }
            Some('U') => {
                let hex = literal
                    .get(at + 2..at + 10)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                match hex
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                {
                    Some(decoded) => {
                        for _ in 0..9 {
                            chars.next();
                        }
                        // Written as itself, unless it is a quote or backslash.
                        if decoded == quote || decoded == '\\' {
                            out.push('\\');
                        }
                        out.push(decoded);
                    }
                    None => out.push('\\'),
                }
            }
            Some(d) => {
                chars.next();
                out.push('\\');
                out.push(d);
            }
            None => out.push('\\'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preprocess;

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(preprocess("no tags here"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn for_loops_iterate_through_the_none_check() {
        assert_eq!(
            preprocess("{%- for m in messages -%}"),
            "{%- for m in( messages)|__lmhost_iterable  -%}"
        );
        assert_eq!(
            preprocess("{% for k, v in d.items() if k != 'in' recursive %}"),
            "{% for k, v in( d.items() )|__lmhost_iterable if k != 'in' recursive %}"
        );
        assert_eq!(
            preprocess("{% for x in [a if b else c] %}"),
            "{% for x in( [a if b else c])|__lmhost_iterable  %}"
        );
        // Not a loop, or a broken one: left for the parser.
        for t in ["{% set x = y.for %}", "{% for x %}", "{% for x in %}", "{% endfor %}"] {
            assert_eq!(preprocess(t), t);
        }
    }

    #[test]
    fn continuation_becomes_adjacent_literals_on_the_same_lines() {
        let t = "{% set s = 'a \\\nb' %}{{ s }}";
        let p = preprocess(t);
        assert_eq!(p, "{% set s = 'a '\n'b' %}{{ s }}");
        assert_eq!(p.lines().count(), t.lines().count());
    }

    #[test]
    fn escapes_outside_tags_and_in_comments_and_raw_are_left_alone() {
        let t = "data \\\n {# 'x\\/y' #}{% raw %}{{ 'a\\/b' }}{% endraw %}{{ 'c\\/d' }}";
        assert_eq!(
            preprocess(t),
            "data \\\n {# 'x\\/y' #}{% raw %}{{ 'a\\/b' }}{% endraw %}{{ 'c\\\\/d' }}"
        );
    }

    #[test]
    fn generation_tags_keep_their_whitespace_marks() {
        assert_eq!(
            preprocess("{%- generation %}x{% endgeneration -%}"),
            "{%- if true %}x{% endif -%}"
        );
        // The word alone in data or a string is not a tag.
        let t = "generation {{ 'generation' }}";
        assert_eq!(preprocess(t), t);
    }

    #[test]
    fn braces_and_quotes_inside_tags_do_not_end_them() {
        let t = "{{ {'a': '}}'} ~ 'x\\/' }}{{ \"it's\\/\" }}";
        assert_eq!(
            preprocess(t),
            "{{ __lmhost_concat({'a': '}}'} , 'x\\\\/') }}{{ \"it's\\\\/\" }}"
        );
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(preprocess("a\r\nb\rc"), "a\nb\nc");
    }

    /// Random strings of Jinja punctuation, keywords and multi-byte text:
    /// never a panic, and templates without tags come back as they were.
    #[test]
    fn random_jinja_soup_never_panics() {
        const PIECES: &[&str] = &[
            "{%",
            "%}",
            "{{",
            "}}",
            "{#",
            "#}",
            "-",
            "+",
            " ",
            "\n",
            "'",
            "\"",
            "\\",
            "for",
            " in ",
            " if ",
            "raw",
            "endraw",
            "generation",
            "endgeneration",
            "recursive",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "x",
            ".",
            "༰",
            "é",
            "🦀",
            "\\\n",
            "\\U0001F980",
            "\\/",
            "\r\n",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut t = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                t.push_str(PIECES[(state % PIECES.len() as u64) as usize]);
            }
            let out = preprocess(&t);
            if !t.contains("{%") && !t.contains("{{") && !t.contains('\r') {
                assert_eq!(out, t);
            }
        }
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for t in [
            "{{ 'abc\\",
            "{% generation",
            "{{",
            "{#",
            "{% raw %}x",
            "{%༰",
            "{%-%}",
            "{%+ for x in y +%}",
            "'\\U0001F6",
            "{{ '\\U0001F980' }}",
        ] {
            let _ = preprocess(t);
        }
        assert_eq!(preprocess("{{ '\\U0001F980' }}"), "{{ '🦀' }}");
    }
}
