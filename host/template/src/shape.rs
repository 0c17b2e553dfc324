//! A bound on the shape of a template, measured with minijinja's own lexer
//! before the parser sees it.
//!
//! minijinja parses, compiles and drops a template by recursion: one stack
//! frame (or several) per level of an expression's syntax tree, and per level of
//! an `{% if %}`…`{% elif %}` chain. Its parser's own nesting limit covers
//! brackets and nested blocks but not left-deep chains (`1 + 1 + … + 1`,
//! `a.a.a…`, `a|e|e…`), prefix chains (`not not …`, `- - …`), ternaries, or
//! `elif` chains, and a 20 KB template of any of them overflows the stack: an
//! abort of the whole host, not an error. Two numbers bound every such shape,
//! whatever its operators:
//!
//! - tokens in one tag: an expression lives inside one `{{ … }}` or `{% … %}`
//!   tag and its tree is never deeper than its token count;
//! - open blocks plus `elif` branches: the only nesting that spans tags.
//!
//! The lexer itself is iterative, so measuring costs one pass and no recursion.
//! A lexer error stops the measurement where it stops the parser.

use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;

/// Most tokens one `{{ … }}` or `{% … %}` tag may hold. Real chat templates
/// stay under 200 (SECURITY.md has the figures); on a 2 MiB thread stack the
/// hungriest chain overflows near 1,400 levels (`examples/stack_probe.rs`).
pub const MAX_TAG_TOKENS: usize = 512;

/// Deepest nesting of blocks (`if`, `for`, `macro`, `set`, …) counting each
/// `elif` of an open `if` as one more level. minijinja's parser refuses 150
/// nested blocks itself, but not an `elif` chain, which nests one level per
/// branch.
pub const MAX_BLOCK_DEPTH: usize = 100;

/// Block tags closed by a matching `end…` tag.
const BLOCKS: &[&str] = &["if", "for", "macro", "call", "filter", "with", "autoescape", "block"];

/// Refuse a template whose shape is over [`MAX_TAG_TOKENS`] or
/// [`MAX_BLOCK_DEPTH`], naming the line and the limit.
pub fn check_shape(template: &str) -> Result<(), String> {
    walk(template, MAX_TAG_TOKENS, MAX_BLOCK_DEPTH).map(|_| ())
}

/// The largest tag (in tokens) and deepest block nesting of a template, for
/// measuring real templates against the limits.
#[doc(hidden)]
pub fn measure_shape(template: &str) -> Shape {
    walk(template, usize::MAX, usize::MAX).unwrap_or_default()
}

/// What [`measure_shape`] found.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub max_tag_tokens: usize,
    pub max_block_depth: usize,
}

fn walk(template: &str, max_tag_tokens: usize, max_block_depth: usize) -> Result<Shape, String> {
    let mut shape = Shape::default();
    let whitespace = WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    // Open blocks, each with its own depth (an `if` grows by one per `elif`).
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    // Inside a tag: its tokens so far, its keyword (first identifier of a
    // `{% … %}`), whether it assigns (`{% set x = … %}` is not a block).
    let mut tag_tokens: Option<usize> = None;
    let mut keyword: Option<&str> = None;
    let mut first_in_block = false;
    let mut assigns = false;
    // A unit struct unless some crate turns on minijinja's `custom_syntax`;
    // `default()` compiles either way.
    #[allow(clippy::default_constructed_unit_structs)]
    let syntax = SyntaxConfig::default();
    for item in tokenize(template, false, syntax, whitespace) {
        let Ok((token, span)) = item else { break };
        let line = span.start_line;
        match token {
            Token::VariableStart | Token::BlockStart => {
                first_in_block = matches!(token, Token::BlockStart);
                tag_tokens = Some(0);
                keyword = None;
                assigns = false;
            }
            Token::VariableEnd | Token::BlockEnd => {
                tag_tokens = None;
                match keyword {
                    Some(k) if BLOCKS.contains(&k) || (k == "set" && !assigns) => {
                        open.push(1);
                        depth += 1;
                    }
                    Some("elif") => {
                        if let Some(top) = open.last_mut() {
                            *top += 1;
                            depth += 1;
                        }
                    }
                    Some(k) if k.starts_with("end") => depth -= open.pop().unwrap_or(0),
                    _ => {}
                }
                shape.max_block_depth = shape.max_block_depth.max(depth);
                if depth > max_block_depth {
                    return Err(format!(
                        "template nests blocks more than {max_block_depth} deep at line {line} \
                         (`elif` branches count as one level each): over the limit on block depth"
                    ));
                }
            }
            _ => {
                if let Some(count) = tag_tokens.as_mut() {
                    *count += 1;
                    shape.max_tag_tokens = shape.max_tag_tokens.max(*count);
                    if *count > max_tag_tokens {
                        return Err(format!(
                            "template tag at line {line} holds more than {max_tag_tokens} tokens: \
                             over the limit on one tag's length (split the expression with `{{% set %}}`)"
                        ));
                    }
                }
                if first_in_block {
                    if let Token::Ident(k) = token {
                        keyword = Some(k);
                    }
                    first_in_block = false;
                }
                if matches!(token, Token::Assign) {
                    assigns = true;
                }
            }
        }
    }
    Ok(shape)
}
