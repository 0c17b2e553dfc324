//! Matching a registry entry's `filename` / `additional_files` globs against a
//! repository's file names, with the `glob` crate.
//!
//! The rules are the shell's as `fnmatch` has them (the hub's own clients use it):
//! `*` and `?` also match `/`, `[seq]` and `[!seq]` are sets, an unclosed `[` is
//! itself, runs of `*` are one `*` (no recursive `**`), case matters. No I/O here.

use glob::{MatchOptions, Pattern};

use super::{invalid, HubError};

/// `*` and `?` cross `/`, a leading `.` needs no literal dot, case matters.
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// The `glob` crate's spelling of a shell glob: an unclosed `[` becomes `[[]`
/// (the crate refuses it; the shell takes it literally) and a run of `*` one
/// `*` (the crate would read `**` as "any folders").
fn shell_to_glob(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                out.push('*');
                while i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
                continue;
            }
            '[' => {
                // A set has at least one member (a leading `]` is one) after an optional `!`.
                let first = i + 1 + usize::from(chars.get(i + 1) == Some(&'!'));
                match chars.iter().skip(first + 1).position(|&c| c == ']') {
                    Some(n) if first < chars.len() => {
                        let end = first + 1 + n;
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        continue;
                    }
                    _ => out.push_str("[[]"),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn compile(pattern: &str) -> Result<Pattern, HubError> {
    Pattern::new(&shell_to_glob(pattern)).map_err(|e| invalid("glob", pattern, e.msg))
}

/// The files matching a glob, in the list's order.
pub(super) fn glob_matches(files: &[String], pattern: &str) -> Result<Vec<String>, HubError> {
    let pattern = compile(pattern)?;
    Ok(files
        .iter()
        .filter(|f| pattern.matches_with(f, OPTIONS))
        .cloned()
        .collect())
}

/// Whether `name` matches the shell-style glob `pattern` (as `filename` is matched).
///
/// ```
/// use lmhost::engines::hub::glob_match;
/// assert!(glob_match("*Q4_K_M.gguf", "model.Q4_K_M.gguf"));
/// assert!(glob_match("*-0000[1-3]-of-*.gguf", "m-00002-of-00003.gguf"));
/// assert!(!glob_match("*.gguf", "README.md"));
/// ```
pub fn glob_match(pattern: &str, name: &str) -> bool {
    compile(pattern).is_ok_and(|p| p.matches_with(name, OPTIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_shell_rules() {
        assert!(glob_match("*.gguf", "dir/model.gguf"));
        assert!(glob_match("model.Q4_?.gguf", "model.Q4_1.gguf"));
        assert!(!glob_match("model.Q4_?.gguf", "model.Q4_K_M.gguf"));
        assert!(glob_match("m[!x].gguf", "m1.gguf"));
        assert!(!glob_match("m[!x].gguf", "mx.gguf"));
        assert!(glob_match("m[.+].gguf", "m+.gguf"));
        assert!(glob_match("a[b", "a[b"));
        assert!(glob_match("x.(1)+.gguf", "x.(1)+.gguf"));
        assert!(!glob_match("*.GGUF", "a.gguf"));
    }

    #[test]
    fn brackets_and_stars_read_as_the_shell_reads_them() {
        assert_eq!(shell_to_glob("a[b"), "a[[]b");
        assert_eq!(shell_to_glob("[]"), "[[]]");
        assert_eq!(shell_to_glob("[!]"), "[[]!]");
        assert_eq!(shell_to_glob("[]]x"), "[]]x");
        assert_eq!(shell_to_glob("[!]]"), "[!]]");
        assert_eq!(shell_to_glob("**/*.gguf"), "*/*.gguf");
        assert!(glob_match("m[]]", "m]"));
        assert!(glob_match("[!]]", "x"));
        assert!(!glob_match("[!]]", "]"));
        assert!(glob_match("**/*.gguf", "a/b/c.gguf"));
        assert!(!glob_match("**/*.gguf", "c.gguf"));
        assert!(glob_match("*", ".gitattributes"));
        assert!(glob_match("a?c", "a/c"));
    }
}
