//! clembench's output rules for one registry entry: `output_split_prefix`,
//! `cot_end_tag`, `eos_to_cull`, applied to the answer's text.

use regex_syntax::hir::HirKind;

use crate::{parse_spec, string_key, AdapterError, ModelInfo};

/// The output rules of one registry entry.
pub(crate) struct PostProcess {
    split_prefix: Option<String>,
    cot_end_tag: Option<String>,
    cull: Option<Cull>,
    /// How many trailing bytes of raw output a future chunk can still change;
    /// `None` when that is unbounded and streaming must wait for the end.
    holdback: Option<usize>,
}

impl PostProcess {
    pub(crate) fn new(model: &ModelInfo, reasoning_parsed: bool) -> Result<Self, AdapterError> {
        let spec = parse_spec(model)?;
        let split_prefix = string_key(model, &spec, "output_split_prefix")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        // When the reasoning parser reads the tags, the text it leaves holds no reasoning.
        let cot_end_tag = string_key(model, &spec, "cot_end_tag")?
            .filter(|s| !s.is_empty() && !reasoning_parsed)
            .map(str::to_string);
        let pattern = string_key(model, &spec, "eos_to_cull")?.filter(|s| !s.is_empty());
        let (cull, cull_len) = match pattern {
            None => (None, Some(0)),
            Some(p) => {
                let invalid = |e: &dyn std::fmt::Display| {
                    AdapterError::InvalidInput(format!(
                        "`eos_to_cull` of `{}` is not a valid regex `{p}`: {e}",
                        model.name
                    ))
                };
                let hir = regex_syntax::parse(p).map_err(|e| invalid(&e))?;
                let props = hir.properties();
                let bounded = if props.look_set().is_empty() {
                    props.maximum_len()
                } else {
                    None
                };
                // Most patterns are an escaped token (`<\|im_end\|>`): match it as
                // text rather than compile a regex on every call.
                let cull = match hir.kind() {
                    HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                        Ok(text) => Cull::Literal(text.to_string()),
                        Err(_) => Cull::Regex(regex::Regex::new(p).map_err(|e| invalid(&e))?),
                    },
                    _ => Cull::Regex(regex::Regex::new(p).map_err(|e| invalid(&e))?),
                };
                (Some(cull), bounded)
            }
        };
        let holdback = if split_prefix.is_some() || cot_end_tag.is_some() {
            None
        } else {
            cull_len
        };
        Ok(Self {
            split_prefix,
            cot_end_tag,
            cull,
            holdback,
        })
    }

    pub(crate) fn apply(&self, raw: &str) -> String {
        let mut text = raw.trim();
        if let Some(prefix) = &self.split_prefix {
            if let Some((_, after)) = text.rsplit_once(prefix.as_str()) {
                text = after;
            }
        }
        if let Some(tag) = &self.cot_end_tag {
            if let Some((_, after)) = text.rsplit_once(tag.as_str()) {
                text = after.trim();
            }
        }
        match &self.cull {
            Some(Cull::Literal(lit)) => text.replace(lit.as_str(), ""),
            Some(Cull::Regex(re)) => re.replace_all(text, "").into_owned(),
            None => text.to_string(),
        }
    }

    /// The part of the final answer already fixed by `raw`, which may still grow.
    pub(crate) fn stable_prefix(&self, raw: &str) -> String {
        let Some(holdback) = self.holdback else {
            return String::new();
        };
        let text = raw.trim_start();
        // Trailing whitespace may yet be stripped, and the last `holdback` bytes
        // may yet become part of a match.
        let mut boundary = text.trim_end().len().min(text.len().saturating_sub(holdback));
        while !text.is_char_boundary(boundary) {
            boundary -= 1;
        }
        let mut out = String::new();
        let mut last = 0;
        let matches: Vec<(usize, usize)> = match &self.cull {
            Some(Cull::Literal(lit)) => text
                .match_indices(lit.as_str())
                .map(|(i, m)| (i, i + m.len()))
                .collect(),
            Some(Cull::Regex(re)) => re.find_iter(text).map(|m| (m.start(), m.end())).collect(),
            None => Vec::new(),
        };
        for (start, end) in matches {
            if start >= boundary {
                break;
            }
            out.push_str(&text[last..start]);
            last = end;
        }
        if last < boundary {
            out.push_str(&text[last..boundary]);
        }
        out
    }
}

/// What `eos_to_cull` removes: a plain text, or matches of a regex.
enum Cull {
    Literal(String),
    Regex(regex::Regex),
}
