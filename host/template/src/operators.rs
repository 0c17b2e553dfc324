//! The token pass after the text pre-pass: two places where a jinja2
//! expression means something a minijinja expression of the same spelling does
//! not, and minijinja offers no hook (its `+` and its attribute lookup are
//! fixed instructions of its VM; an object sees `d.items` and `d["items"]` as
//! the same lookup). The pass rewrites them into a filter or a function call of
//! `pyops.rs`, using minijinja's own tokenizer so that string literals,
//! comments and `raw` blocks are read exactly as the parser reads them.
//!
//! - **`X.name` for a dict or list method name, not called** (`json_spec.items`
//!   in Command-R's tool template, where the schema has an `items` key) becomes
//!   `(X|__lmhost_attr("name"))`: jinja2 finds the dict's bound method first.
//!   `X.items()` is left alone (pycompat calls the method already), and so is a
//!   `{% set ns.items = … %}` target.
//! - **`+` in a template that makes markup** (`|safe`, `|e`, `|escape`,
//!   `|forceescape` anywhere in it): every `a + b + c` whose operators are all
//!   `+` becomes `__lmhost_add(a, b, c)`, which escapes a plain string added
//!   to markup as Python's `Markup.__add__` does (functionary-v3.1 sends its tool
//!   schemas to the model HTML-escaped that way). Markup travels through
//!   variables, so the rewrite cannot stop at the `+` next to the filter; in
//!   templates without those filters there is no markup and `+` stays
//!   minijinja's.
//! - **`a ~ b ~ c`** becomes `__lmhost_concat(a, b, c)`: jinja2 joins
//!   Python's `str()` of each operand, minijinja its own display (`1e-07` came
//!   out as `0.0000001` in a tool schema's `minimum`, a list built by the
//!   template with `"` quotes instead of `'`).
//!
//! Each rewrite stays on its line. A template the tokenizer rejects is passed
//! on unchanged for the parser to report.

use std::borrow::Cow;

use minijinja::machinery::{tokenize, Span, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;

use crate::pyops::is_container_attribute;

/// The filter `X.name` goes through.
pub const ATTR_FILTER: &str = "__lmhost_attr";
/// The function an all-`+` chain becomes.
pub const ADD_FUNCTION: &str = "__lmhost_add";
/// The function a `~` chain becomes.
pub const CONCAT_FUNCTION: &str = "__lmhost_concat";

const MARKUP_FILTERS: &[&str] = &["safe", "e", "escape", "forceescape"];

/// Identifiers that end an operand of `+` (lower precedence, or statement
/// syntax), unless they follow `.`, `|` or `is`.
const DELIMITING_WORDS: &[&str] = &["and", "or", "not", "in", "if", "else", "elif", "for", "recursive"];

pub fn rewrite(src: &str) -> Cow<'_, str> {
    // Cheap gates: most templates have neither.
    let attr_candidate = src.match_indices('.').any(|(i, _)| {
        let rest = &src[i + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        is_container_attribute(&rest[..len])
    });
    let markup_candidate = mentions_markup_filter(src);
    let concat_candidate = src.contains('~');
    if !attr_candidate && !markup_candidate && !concat_candidate {
        return Cow::Borrowed(src);
    }
    let ws = WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    let mut tokens = Vec::new();
    // A unit struct unless some crate turns on minijinja's `custom_syntax`.
    #[allow(clippy::default_constructed_unit_structs)]
    let syntax = SyntaxConfig::default();
    for token in tokenize(src, false, syntax, ws) {
        match token {
            Ok(t) => tokens.push(t),
            Err(_) => return Cow::Borrowed(src),
        }
    }
    let makes_markup = tokens
        .windows(2)
        .any(|w| matches!(w, [(Token::Pipe, _), (Token::Ident(name), _)] if MARKUP_FILTERS.contains(name)));
    let mut edits = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        let Some(open) = tokens[start..]
            .iter()
            .position(|(t, _)| matches!(t, Token::BlockStart | Token::VariableStart))
        else {
            break;
        };
        let open = start + open + 1;
        let close = tokens[open..]
            .iter()
            .position(|(t, _)| matches!(t, Token::BlockEnd | Token::VariableEnd))
            .map_or(tokens.len(), |p| open + p);
        let tag = &tokens[open..close];
        if attr_candidate {
            attribute_edits(tag, &mut edits);
        }
        if makes_markup || concat_candidate {
            let is_block = matches!(tokens[open - 1].0, Token::BlockStart);
            chain_edits(tag, is_block, makes_markup, &mut edits);
        }
        start = close + 1;
    }
    if edits.is_empty() {
        return Cow::Borrowed(src);
    }
    Cow::Owned(apply(src, edits))
}

/// Whether `|name` appears for a markup filter (before tokenizing anything).
fn mentions_markup_filter(src: &str) -> bool {
    src.match_indices('|').any(|(i, _)| {
        let rest = src[i + 1..].trim_start();
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        MARKUP_FILTERS.contains(&&rest[..name_len])
    })
}

/// One change to the source: `text` replaces `start..end` (an insertion when
/// they are equal). `order` settles insertions at the same offset.
struct Edit {
    start: usize,
    end: usize,
    text: String,
    order: (u8, std::cmp::Reverse<usize>),
}

fn offset(span: &Span, end: bool) -> usize {
    (if end { span.end_offset } else { span.start_offset }) as usize
}

/// Opening text of a construct spanning `start..end`: outer constructs (ending
/// later) open first.
fn open_at(start: usize, end: usize, text: String) -> Edit {
    Edit {
        start,
        end: start,
        text,
        order: (1, std::cmp::Reverse(end)),
    }
}

fn attribute_edits(tag: &[(Token<'_>, Span)], edits: &mut Vec<Edit>) {
    for i in 1..tag.len() {
        let (Token::Dot, dot) = &tag[i] else { continue };
        let Some((Token::Ident(name), name_span)) = tag.get(i + 1) else {
            continue;
        };
        if !is_container_attribute(name) {
            continue;
        }
        if matches!(tag.get(i + 2), Some((Token::ParenOpen | Token::Assign, _))) {
            continue;
        }
        let Some(first) = postfix_start(tag, i) else { continue };
        let end = offset(name_span, true);
        edits.push(open_at(offset(&tag[first].1, false), end, "(".into()));
        edits.push(Edit {
            start: offset(dot, false),
            end,
            text: format!("|{ATTR_FILTER}(\"{name}\"))"),
            order: (2, std::cmp::Reverse(0)),
        });
    }
}

/// The first token of the postfix chain (`a.b[c](d)`) that ends just before
/// `tag[dot]`.
fn postfix_start(tag: &[(Token<'_>, Span)], dot: usize) -> Option<usize> {
    let mut i = dot.checked_sub(1)?;
    loop {
        match &tag[i].0 {
            Token::Ident(_) => {
                if i >= 2 && matches!(tag[i - 1].0, Token::Dot) {
                    i -= 2;
                    continue;
                }
                return Some(i);
            }
            Token::Str(_) | Token::String(_) | Token::Int(_) | Token::Float(_) => return Some(i),
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                let opener = matching_open(tag, i)?;
                // A call or subscript continues the chain; a bare group or
                // literal starts it.
                let called = opener >= 1
                    && matches!(
                        tag[opener - 1].0,
                        Token::Ident(_) | Token::ParenClose | Token::BracketClose
                    )
                    && !matches!(tag[opener].0, Token::BraceOpen)
                    && !matches!(&tag[opener - 1].0, Token::Ident(w) if DELIMITING_WORDS.contains(w) || *w == "is");
                if called {
                    i = opener - 1;
                    continue;
                }
                return Some(opener);
            }
            _ => return None,
        }
    }
}

fn matching_open(tag: &[(Token<'_>, Span)], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = close;
    loop {
        match tag[i].0 {
            Token::ParenClose | Token::BracketClose | Token::BraceClose => depth += 1,
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i = i.checked_sub(1)?;
    }
}

/// A run of operands joined by one operator (`+` or `~`) at one bracket level.
#[derive(Default)]
struct Chain {
    /// First token of the current chain.
    first: Option<usize>,
    /// The last token that belongs to an operand.
    last: usize,
    operators: Vec<usize>,
    /// A binary `-` beside `+`: a chain mixing them is left alone.
    mixed: bool,
}

impl Chain {
    fn operand(&mut self, i: usize) {
        self.first.get_or_insert(i);
        self.last = i;
    }

    /// Emit `function(a, b, …)` for a chain of two or more operands.
    fn finish(&mut self, function: &str, tag: &[(Token<'_>, Span)], edits: &mut Vec<Edit>) {
        if let (Some(first), false, false) = (self.first, self.operators.is_empty(), self.mixed) {
            let (start, end) = (offset(&tag[first].1, false), offset(&tag[self.last].1, true));
            edits.push(open_at(start, end, format!("{function}(")));
            for &op in &self.operators {
                edits.push(Edit {
                    start: offset(&tag[op].1, false),
                    end: offset(&tag[op].1, true),
                    text: ",".into(),
                    order: (2, std::cmp::Reverse(0)),
                });
            }
            edits.push(Edit {
                start: end,
                end,
                text: ")".into(),
                order: (0, std::cmp::Reverse(start)),
            });
        }
        *self = Chain::default();
    }
}

/// One bracket level: the `+` chain and, inside its current operand, the `~`
/// chain (`~` binds tighter than `+`, looser than `*`, as in jinja2).
#[derive(Default)]
struct Level {
    sum: Chain,
    cat: Chain,
}

impl Level {
    fn operand(&mut self, i: usize) {
        self.sum.operand(i);
        self.cat.operand(i);
    }

    fn finish(&mut self, markup: bool, tag: &[(Token<'_>, Span)], edits: &mut Vec<Edit>) {
        self.cat.finish(CONCAT_FUNCTION, tag, edits);
        if markup {
            self.sum.finish(ADD_FUNCTION, tag, edits);
        } else {
            self.sum = Chain::default();
        }
    }
}

/// Whether a token ends an operand (so a `+` or `-` after it is binary).
fn ends_operand(token: &Token<'_>) -> bool {
    match token {
        Token::Ident(w) => !DELIMITING_WORDS.contains(w) && *w != "is",
        Token::Str(_)
        | Token::String(_)
        | Token::Int(_)
        | Token::Int128(_)
        | Token::Float(_)
        | Token::ParenClose
        | Token::BracketClose
        | Token::BraceClose => true,
        _ => false,
    }
}

/// Edits for the `~` chains of one tag, and its `+` chains when `markup`.
fn chain_edits(tag: &[(Token<'_>, Span)], is_block: bool, markup: bool, edits: &mut Vec<Edit>) {
    let mut levels = vec![Level::default()];
    for (i, (token, _)) in tag.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| &tag[p].0);
        let binary = previous.is_some_and(ends_operand);
        let level = levels.last_mut().expect("one level at least");
        let delimits = match token {
            Token::Ident(w) => {
                let after = previous.is_some_and(|p| matches!(p, Token::Dot | Token::Pipe | Token::Ident("is")));
                (is_block && i == 0) || (!after && DELIMITING_WORDS.contains(w))
            }
            Token::Comma
            | Token::Colon
            | Token::Assign
            | Token::Eq
            | Token::Ne
            | Token::Lt
            | Token::Lte
            | Token::Gt
            | Token::Gte => true,
            _ => false,
        };
        if delimits {
            level.finish(markup, tag, edits);
            continue;
        }
        match token {
            Token::Plus | Token::Minus if binary => {
                level.cat.finish(CONCAT_FUNCTION, tag, edits);
                level.sum.operators.push(i);
                level.sum.mixed |= matches!(token, Token::Minus);
            }
            Token::Tilde if binary => level.cat.operators.push(i),
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => {
                level.operand(i);
                levels.push(Level::default());
            }
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                level.finish(markup, tag, edits);
                if levels.len() > 1 {
                    levels.pop();
                }
                levels.last_mut().expect("one level at least").operand(i);
            }
            _ => level.operand(i),
        }
    }
    while let Some(mut level) = levels.pop() {
        level.finish(markup, tag, edits);
    }
}

fn apply(src: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.start, e.order));
    let mut out = String::with_capacity(src.len() + edits.len() * 16);
    let mut copied = 0;
    for edit in edits {
        if edit.start < copied {
            // Overlapping edits cannot come from one tokenization; skip.
            continue;
        }
        out.push_str(&src[copied..edit.start]);
        out.push_str(&edit.text);
        copied = edit.end;
    }
    out.push_str(&src[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn attribute_reads_of_method_names_go_through_the_filter() {
        assert_eq!(
            rewrite("{{ f(spec.items) }}{{ a.b[0].keys|length }}"),
            "{{ f((spec|__lmhost_attr(\"items\"))) }}{{ (a.b[0]|__lmhost_attr(\"keys\"))|length }}"
        );
        assert_eq!(
            rewrite("{{ x.items.y }}{{ g(1).values }}"),
            "{{ (x|__lmhost_attr(\"items\")).y }}{{ (g(1)|__lmhost_attr(\"values\")) }}"
        );
        // Calls, set targets, ordinary names and strings are left alone.
        let kept = "{% set ns.items = 1 %}{{ d.items() }}{{ d.name }}{{ '.items' }}{# d.items #}";
        assert_eq!(rewrite(kept), kept);
    }

    #[test]
    fn plus_chains_become_one_call_when_the_template_makes_markup() {
        assert_eq!(
            rewrite("{{ \"a\"|safe + t['n'] + 'b' ~ c|tojson }}"),
            "{{ __lmhost_add(\"a\"|safe , t['n'] , __lmhost_concat('b' , c|tojson)) }}"
        );
        assert_eq!(
            rewrite("{%- set x = y|safe %}{% if a + b * 2 == -c + 1 and f(d + e) %}{{ [1] + [x + 1] }}{% endif %}"),
            "{%- set x = y|safe %}{% if __lmhost_add(a , b * 2) == __lmhost_add(-c , 1) and f(__lmhost_add(d , e)) %}{{ __lmhost_add([1] , [__lmhost_add(x , 1)]) }}{% endif %}"
        );
        // Mixed `+`/`-` chains and templates without markup stay as written.
        assert_eq!(rewrite("{{ a|e }}{{ a + b - c }}"), "{{ a|e }}{{ a + b - c }}");
        assert_eq!(rewrite("{{ a + b }}"), "{{ a + b }}");
        assert_eq!(
            rewrite("{{ x|e }}{{ a + b if c else d + e }}{{ {'k': a + b} }}"),
            "{{ x|e }}{{ __lmhost_add(a , b) if c else __lmhost_add(d , e) }}{{ {'k': __lmhost_add(a , b)} }}"
        );
    }

    #[test]
    fn both_rewrites_nest() {
        assert_eq!(
            rewrite("{{ 'x'|safe + d.items ~ 'y' }}"),
            "{{ __lmhost_add('x'|safe , __lmhost_concat((d|__lmhost_attr(\"items\")) , 'y')) }}"
        );
        assert_eq!(
            rewrite("{{ d.items + 'x'|safe }}"),
            "{{ __lmhost_add((d|__lmhost_attr(\"items\")) , 'x'|safe) }}"
        );
    }

    #[test]
    fn tilde_chains_become_one_call_in_every_template() {
        assert_eq!(
            rewrite("{{ a ~ b.c ~ f(x ~ 'y') }}{% set s = 'n: ' ~ n * 2 if n else '' ~ m %}"),
            "{{ __lmhost_concat(a , b.c , f(__lmhost_concat(x , 'y'))) }}{% set s = __lmhost_concat('n: ' , n * 2) if n else __lmhost_concat('' , m) %}"
        );
        // `~` binds tighter than `+`, and `+` chains stay when nothing makes markup.
        assert_eq!(rewrite("{{ a + b ~ c }}"), "{{ a + __lmhost_concat(b , c) }}");
        assert_eq!(rewrite("{{ '~' }}{{ a }}"), "{{ '~' }}{{ a }}");
    }

    #[test]
    fn the_longest_chains_a_tag_may_hold_end_in_an_error_or_a_rendering_not_a_crash() {
        let budget = crate::Budget::default();
        for tag in [
            format!("{{{{ d{} }}}}", ".items".repeat(250)),
            format!("{{{{ 'a'|safe{} }}}}", " + d.items".repeat(120)),
            format!("{{{{ a{} }}}}", " ~ (b".repeat(140) + &")".repeat(140)),
        ] {
            let started = std::time::Instant::now();
            let _ = crate::render(&tag, r#"{"d": {}}"#, &budget);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[test]
    fn untokenizable_input_is_passed_on() {
        let bad = "{{ 'unterminated .items }}{{ a|safe + b";
        assert_eq!(rewrite(bad), bad);
    }
}
