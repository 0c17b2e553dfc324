//! The Jinja dialect lmhost chat templates are written in: minijinja made to
//! render as Python's jinja2 renders under transformers' `apply_chat_template`.
//! Python string/dict methods (`pycompat`); `trim_blocks` and `lstrip_blocks`;
//! maps in insertion order (`preserve_order`, and the context deserialized
//! straight into minijinja values); transformers' `tojson` and Python's
//! spelling of printed values (`python.rs`); a lexer pre-pass for what
//! minijinja has no hook for (`preprocess.rs`: string escapes, newlines,
//! `{% generation %}`; `operators.rs` + `pyops.rs`: a dict's methods read as
//! attributes, markup's escaping `+`, `~` as `str()`, generators); jinja2's
//! versions of the built-in filters that differ (`filters.rs`); the globals real templates call (`raise_exception`,
//! `strftime_now`). The conformance corpus in `tests/fixtures/chat-templates/`
//! holds it to jinja2's output byte for byte.
//!
//! One crate, two users: the host parses templates with it (registry
//! validation), and the renderer guest (`guests/rust/template-renderer`) renders
//! with it inside a wasm sandbox, where a template that allocates or loops
//! without end hits a memory cap or a deadline instead of the host. Rendering
//! here is also bounded by fuel, an output cap (enforced while writing) and a
//! source-size cap, and parsing by a shape bound measured before the parser runs
//! (`shape.rs`), in both users: the host parses on ordinary thread stacks.
//! Pure: no I/O.

use std::fmt::Write as _;

mod filters;
#[doc(hidden)]
pub mod hostile;
mod operators;
mod preprocess;
mod pyops;
mod python;
mod shape;

pub use preprocess::preprocess;
pub use python::float_repr;

pub use shape::{check_shape, measure_shape, Shape, MAX_BLOCK_DEPTH, MAX_TAG_TOKENS};

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// Budgets for one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// minijinja fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Longest template source accepted, in bytes.
    pub max_template_bytes: usize,
    /// Longest rendered output accepted, in bytes.
    pub max_output_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            max_template_bytes: 1 << 20,
            max_output_bytes: 16 << 20,
        }
    }
}

/// Render `template` with the JSON object `context_json` (its objects keep
/// their key order, as Python dicts do).
///
/// ```
/// let out = lmhost_template::render(
///     "{% for m in messages %}{{ m.role | upper }}: {{ m.content.strip() }}\n{% endfor %}",
///     r#"{"messages": [{"role": "user", "content": " hi "}]}"#,
///     &lmhost_template::Budget::default(),
/// ).unwrap();
/// assert_eq!(out, "USER: hi\n");
/// ```
pub fn render(template: &str, context_json: &str, budget: &Budget) -> Result<String, String> {
    render_at(template, context_json, budget, None)
}

/// [`render`] with `strftime_now` reading a fixed instant instead of the clock
/// (conformance tests, reproducible prompts).
pub fn render_at(
    template: &str,
    context_json: &str,
    budget: &Budget,
    now: Option<chrono::NaiveDateTime>,
) -> Result<String, String> {
    // The bounds are on the template as written (the pre-pass adds a few
    // tokens to each `for` tag).
    check_size(template, budget)?;
    let template = preprocess(template);
    // Deserialized straight into minijinja values (an order-keeping map, with
    // the `preserve_order` feature): `serde_json::Value` would sort the keys.
    let context: Value =
        serde_json::from_str(context_json).map_err(|e| format!("template context is not valid JSON: {e}"))?;
    if context.kind() != minijinja::value::ValueKind::Map {
        return Err("template context must be a JSON object".into());
    }
    let context = python::pythonize(context, 0).map_err(describe)?;
    let env = environment_at(budget.fuel, now);
    let compiled = env.template_from_str(&template).map_err(describe)?;
    let mut out = CappedString {
        text: String::new(),
        cap: budget.max_output_bytes,
        over: false,
    };
    let result = compiled.render_captured_to(context, &mut out).map(|_| ());
    if out.over {
        return Err(format!(
            "template output is over the limit of {} bytes",
            budget.max_output_bytes
        ));
    }
    result.map_err(describe)?;
    Ok(out.text)
}

/// Whether `template` parses (no rendering).
pub fn check(template: &str) -> Result<(), String> {
    check_size(template, &Budget::default())?;
    let template = preprocess(template);
    environment(Budget::default().fuel)
        .template_from_str(&template)
        .map(|_| ())
        .map_err(describe)
}

/// The names a template reads from its context (top-level variables it does
/// not set itself), sorted: what a registry's `chat_template_kwargs` can reach.
pub fn variables(template: &str) -> Result<Vec<String>, String> {
    check_size(template, &Budget::default())?;
    let template = preprocess(template);
    let env = environment(Budget::default().fuel);
    let compiled = env.template_from_str(&template).map_err(describe)?;
    let mut names: Vec<String> = compiled.undeclared_variables(false).into_iter().collect();
    names.sort();
    Ok(names)
}

/// The bounds checked before minijinja parses anything: source size, then
/// shape (see `shape.rs`: a deep expression or `elif` chain would otherwise
/// overflow the stack while parsing, compiling or dropping the template).
fn check_size(template: &str, budget: &Budget) -> Result<(), String> {
    if template.len() > budget.max_template_bytes {
        return Err(format!(
            "template is {} bytes, over the limit of {} bytes",
            template.len(),
            budget.max_template_bytes
        ));
    }
    check_shape(template)
}

/// A writer that refuses to grow past its cap.
struct CappedString {
    text: String,
    cap: usize,
    over: bool,
}

impl std::io::Write for CappedString {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        // minijinja writes whole UTF-8 strings.
        self.text
            .push_str(std::str::from_utf8(buf).map_err(std::io::Error::other)?);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The environment every lmhost template runs in. Templates must go through
/// [`preprocess`] first.
pub fn environment(fuel: u64) -> Environment<'static> {
    environment_at(fuel, None)
}

/// An error `raise_exception` made (the template's own message), told apart
/// from the renderer's errors in [`describe`].
#[derive(Debug)]
struct Raised;

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raised by the template")
    }
}

impl std::error::Error for Raised {}

fn environment_at(fuel: u64, now: Option<chrono::NaiveDateTime>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(fuel));
    // minijinja's own maximum: a macro that loops and recurses goes ~70 levels
    // deep (jinja2 ~190; Kimi K3's JSON sorter needs one per schema level).
    // At the limit the renderer has used under 1 MiB of stack (test below).
    env.set_recursion_limit(500);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python::format_value);
    env.add_filter("tojson", python::tojson);
    env.add_filter("string", python::string_filter);
    // jinja2's operators, attribute reads and generators (`operators.rs`, `pyops.rs`).
    pyops::register(&mut env);
    filters::register(&mut env);
    // `none is iterable` is false in jinja2 (minijinja iterates none as empty;
    // a `for` over none fails, see `preprocess.rs`), and an iterable is not
    // iterated to find out (that would use up a generator).
    env.add_test("iterable", |v: &Value| match v.kind() {
        minijinja::value::ValueKind::None => false,
        minijinja::value::ValueKind::Iterable => true,
        _ => v.try_iter().is_ok(),
    });
    env.add_filter(preprocess::ITERABLE_FILTER, |v: Value| -> Result<Value, Error> {
        if v.is_none() {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                "'NoneType' object is not iterable (a `for` over none)",
            ))
        } else {
            Ok(v)
        }
    });
    // jinja2's `sequence` test: anything with a length and indexing, strings
    // and mappings included.
    env.add_test("sequence", |v: &Value| {
        use minijinja::value::ValueKind;
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined | ValueKind::Bytes
        )
    });
    env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message).with_source(Raised))
    });
    env.add_function("strftime_now", move |format: String| -> Result<String, Error> {
        let now = now.unwrap_or_else(|| chrono::Local::now().naive_local());
        let mut out = String::new();
        write!(out, "{}", now.format(&format))
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("bad strftime format `{format}`")))?;
        Ok(out)
    });
    env
}

/// A template error as one line.
pub fn describe(err: Error) -> String {
    let mut msg = match (err.kind(), err.detail()) {
        (ErrorKind::OutOfFuel, _) => "template ran out of fuel (too much work)".to_string(),
        (ErrorKind::InvalidOperation, Some(detail))
            if std::error::Error::source(&err).is_some_and(|s| s.is::<Raised>()) =>
        {
            format!("template raised an exception: {detail}")
        }
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    if let Some(line) = err.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, ctx: &str) -> Result<String, String> {
        super::render(t, ctx, &Budget::default())
    }

    pub(super) const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn renders_chatml() {
        let out = render(
            CHATML,
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "add_generation_prompt": true}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_like_transformers() {
        let out = render("  {% if true %}\nx\n  {% endif %}\ny", "{}").unwrap();
        assert_eq!(out, "x\ny");
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let err = render("{{ raise_exception('Conversation roles must alternate') }}", "{}").unwrap_err();
        assert!(err.contains("Conversation roles must alternate"), "{err}");
    }

    #[test]
    fn tojson_and_python_methods() {
        let out = render(
            "{{ x | tojson }} {{ s.startswith('a') }} {{ d.items() | list | length }}",
            r#"{"x": [1, "a"], "s": "abc", "d": {"k": 1}}"#,
        )
        .unwrap();
        assert_eq!(out, r#"[1, "a"] True 1"#, "booleans print as Jinja2 prints them");
    }

    #[test]
    fn variables_are_the_names_read_from_the_context() {
        let names = variables(
            "{% set x = 1 %}{% if enable_thinking is defined %}{{ x }}{% endif %}{% for m in messages %}{{ m }}{% endfor %}",
        )
        .unwrap();
        assert_eq!(names, ["enable_thinking", "messages"]);
    }

    #[test]
    fn tojson_is_json_dumps() {
        let ctx = r#"{"d": {"z": 1, "a": [1.0, "é<&>'\"", null, true]}, "e": {}}"#;
        for (t, want) in [
            ("{{ d|tojson }}", r#"{"z": 1, "a": [1.0, "é<&>'\"", null, true]}"#),
            (
                "{{ d|tojson(ensure_ascii=True) }}",
                r#"{"z": 1, "a": [1.0, "\u00e9<&>'\"", null, true]}"#,
            ),
            (
                "{{ d|tojson(sort_keys=True, separators=(',', ':')) }}",
                r#"{"a":[1.0,"é<&>'\"",null,true],"z":1}"#,
            ),
            (
                "{{ d.a|tojson(indent=2) }}",
                "[\n  1.0,\n  \"é<&>'\\\"\",\n  null,\n  true\n]",
            ),
            ("{{ e|tojson(indent=4) }}", "{}"),
            ("{{ d.z|tojson(2) }}", "1"),
        ] {
            assert_eq!(render(t, ctx).unwrap(), want, "{t}");
        }
        assert!(render("{{ d|tojson(bogus=1) }}", ctx).unwrap_err().contains("bogus"));
        assert!(render("{{ nothing|tojson }}", ctx).unwrap_err().contains("Undefined"));
    }

    #[test]
    fn values_print_as_python_prints_them() {
        let ctx = r#"{"l": ["a", "it's", 1.5e-7, null, true], "m": {"z": 1, "a": {"k": "v"}}, "f": 1e16}"#;
        for (t, want) in [
            ("{{ l }}", r#"['a', "it's", 1.5e-07, None, True]"#),
            ("{{ m }}", "{'z': 1, 'a': {'k': 'v'}}"),
            ("{{ 'x' ~ m ~ 'y' }}", "x{'z': 1, 'a': {'k': 'v'}}y"),
            (
                "{{ m|string }}|{{ l[:1]|string }}|{{ l|upper }}",
                "{'z': 1, 'a': {'k': 'v'}}|['a']|['A', \"IT'S\", 1.5E-07, NONE, TRUE]",
            ),
            (
                "{{ f }} {{ l + ['b'] }}",
                "1e+16 ['a', \"it's\", 1.5e-07, None, True, 'b']",
            ),
            (
                "{% for k, v in m.items() %}{{ k }}{% endfor %}{{ m.keys()|list }}",
                "za['z', 'a']",
            ),
            ("{{ {'y': 1, 'b': 2} }}", "{'y': 1, 'b': 2}"),
        ] {
            assert_eq!(render(t, ctx).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn none_is_not_iterable_as_in_jinja2() {
        let ctx = r#"{"tools": null}"#;
        assert_eq!(
            render("{{ tools is iterable }} {{ missing is iterable }}", ctx).unwrap(),
            "False True"
        );
        let err = render("{% for t in tools %}{{ t }}{% endfor %}", ctx).unwrap_err();
        assert!(err.contains("not iterable") && err.contains("line 1"), "{err}");
        assert_eq!(render("{% for t in missing %}x{% endfor %}ok", ctx).unwrap(), "ok");
        assert_eq!(render("{% for t in tools or [] %}x{% endfor %}ok", ctx).unwrap(), "ok");
    }

    #[test]
    fn errors_say_what_failed() {
        let err = render("line one\n{{ x|nofilter }}", "{}").unwrap_err();
        assert!(err.starts_with("unknown filter") && err.ends_with("(line 2)"), "{err}");
        let err = render("{{ 1 + 'a' }}", "{}").unwrap_err();
        assert!(
            err.starts_with("invalid operation:") && !err.contains("raised"),
            "{err}"
        );
        let err = render("{{ raise_exception('Roles must alternate') }}", "{}").unwrap_err();
        assert_eq!(err, "template raised an exception: Roles must alternate (line 1)");
    }

    #[test]
    fn continuation_and_generation_render_as_in_jinja2() {
        assert_eq!(render("{{ 'a \\\nb' }}|{{ 'c\\/d' }}", "{}").unwrap(), "a b|c\\/d");
        assert_eq!(
            render(
                "{% for m in ms %}{%- generation -%} {{ m }} {%- endgeneration -%}|{% endfor %}",
                r#"{"ms": [1, 2]}"#
            )
            .unwrap(),
            "1|2|"
        );
    }

    #[test]
    fn strftime_now_formats_today() {
        let out = render("{{ strftime_now('%Y') }}", "{}").unwrap();
        assert_eq!(out, chrono::Local::now().format("%Y").to_string());
    }

    #[test]
    fn syntax_errors_are_reported_not_panicked() {
        let err = render("{% for x in %}", "{}").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let started = std::time::Instant::now();
        let err = render("{% for i in range(1000000000) %}{{ i }}{% endfor %}", "{}").unwrap_err();
        assert!(err.contains("fuel") || err.contains("range"), "{err}");
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn oversized_output_is_refused() {
        let budget = Budget {
            max_output_bytes: 10,
            ..Budget::default()
        };
        let err = super::render("{{ 'x' * 100 }}", "{}", &budget).unwrap_err();
        assert!(err.contains("over the limit of 10 bytes"), "{err}");
    }

    #[test]
    fn context_must_be_an_object() {
        assert!(render("x", "[1]").unwrap_err().contains("JSON object"));
        assert!(render("x", "{").unwrap_err().contains("not valid JSON"));
    }
}

#[cfg(test)]
mod bounds {
    use super::*;

    #[test]
    fn output_is_capped_while_writing_not_after() {
        let budget = Budget {
            max_output_bytes: 1 << 20,
            ..Budget::default()
        };
        let started = std::time::Instant::now();
        let err = render(
            "{% for i in range(1000) %}{{ 'x' * 1000000 }}{% endfor %}",
            "{}",
            &budget,
        )
        .unwrap_err();
        assert!(err.contains("over the limit"), "{err}");
        assert!(started.elapsed().as_secs() < 2);
    }

    #[test]
    fn printing_a_huge_list_or_dumping_it_is_refused_not_built() {
        let items = vec!["s"; 20].join(", ");
        for (how, want) in [
            ("", "printed value"),
            ("|string", "printed value"),
            ("|tojson", "printed value"),
        ] {
            let t = format!("{{% set s = 'x' * 1000000 %}}{{{{ [{items}]{how} }}}}");
            let err = render(&t, "{}", &Budget::default()).unwrap_err();
            assert!(err.contains(want) && err.contains("16777216"), "{how}: {err}");
        }
    }

    #[test]
    fn deep_nesting_and_recursion_are_refused() {
        let nested = format!("{}x{}", "{% if true %}".repeat(20_000), "{% endif %}".repeat(20_000));
        let err = check(&nested).unwrap_err();
        assert!(err.contains("limit on block depth"), "{err}");
        let err = render(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{}",
            &Budget::default(),
        )
        .unwrap_err();
        assert!(err.contains("recursion"), "{err}");
    }

    #[test]
    fn recursion_as_deep_as_real_templates_go_renders_and_the_limit_comes_before_the_stack_ends() {
        // A macro that loops over a dict and recurses, like a schema printer.
        let at = |depth: usize| {
            format!(
                "{{% macro f(d, n) %}}{{% if n > 0 %}}{{% for k, v in d|items %}}{{{{ f(d, n - 1) }}}}{{% endfor %}}\
                 {{% else %}}x{{% endif %}}{{% endmacro %}}{{{{ f({{'k': 1}}, {depth}) }}}}"
            )
        };
        assert_eq!(render(&at(60), "{}", &Budget::default()).unwrap(), "x");
        let deepest = at(1000);
        let deepest = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(move || render(&deepest, "{}", &Budget::default()))
            .unwrap()
            .join()
            .unwrap();
        let err = deepest.unwrap_err();
        assert!(err.contains("recursion limit exceeded (line 1)"), "{err}");
    }

    #[test]
    fn python_object_model_payloads_find_nothing() {
        for payload in [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ self.__init__.__globals__.__builtins__ }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
        ] {
            let out = render(payload, "{}", &Budget::default());
            assert!(
                out.as_ref().map_or(true, |s| s.is_empty()),
                "{payload} rendered {out:?}"
            );
        }
    }
}

/// The stack-overflow class (every family of deep structure in `hostile.rs`):
/// refused with an error naming the line and the limit, or parsed, never an
/// abort; and the deepest shape the bound lets through parses on a 2 MiB thread
/// stack, the size of the host's async and blocking worker threads.
#[cfg(test)]
mod deep_structure {
    use super::*;
    use crate::hostile::{chain, FAMILIES};

    /// Runs `f` on a thread with the stack of a tokio worker.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    /// The most terms of `family` the shape bound accepts.
    fn deepest_accepted(family: &str) -> usize {
        let (mut lo, mut hi) = (0, 4 * MAX_TAG_TOKENS);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if check_shape(&chain(family, mid).unwrap()).is_ok() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    #[test]
    fn every_family_far_over_the_bound_is_an_error_naming_line_and_limit() {
        for family in FAMILIES {
            for terms in [10_000, 30_000] {
                let source = chain(family, terms).unwrap();
                let started = std::time::Instant::now();
                let err = on_small_stack(move || check(&source)).unwrap_err();
                assert!(
                    err.contains("limit") && err.contains("line "),
                    "{family} × {terms}: {err}"
                );
                assert!(started.elapsed().as_secs() < 5, "{family} × {terms}");
                let source = chain(family, terms).unwrap();
                let err = on_small_stack(move || render(&source, "{}", &Budget::default())).unwrap_err();
                assert!(err.contains("limit"), "render {family} × {terms}: {err}");
            }
        }
    }

    #[test]
    fn every_family_just_over_the_bound_is_refused_and_just_under_parses() {
        for family in FAMILIES {
            let n = deepest_accepted(family);
            assert!(n >= 1, "{family} refused even one term");
            let over = check(&chain(family, n + 1).unwrap()).unwrap_err();
            assert!(over.contains("limit"), "{family} × {}: {over}", n + 1);
            // Just under: parsed and compiled (or refused by minijinja's own
            // nesting limit), on a worker-sized stack, without overflowing.
            let source = chain(family, n).unwrap();
            let under = on_small_stack(move || check(&source));
            if let Err(e) = under {
                assert!(e.contains("recursion limits"), "{family} × {n}: {e}");
            }
        }
    }

    #[test]
    fn deepest_blocks_holding_the_longest_tag_parse_on_a_small_stack() {
        // Both bounds at once: an `elif` chain as deep as allowed, its last
        // branch holding the longest accepted expression of the hungriest kinds.
        for family in ["neg", "call", "not", "plus", "ternary_else", "attr"] {
            let n = deepest_accepted(family);
            let expr = chain(family, n).unwrap();
            let source = format!(
                "{{% if a %}}{}{expr}{{% endif %}}",
                "{% elif a %}".repeat(MAX_BLOCK_DEPTH - 1)
            );
            assert!(check_shape(&source).is_ok(), "{family}");
            on_small_stack(move || check(&source)).unwrap();
        }
    }

    #[test]
    fn a_context_nested_100k_deep_is_an_error() {
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let err = on_small_stack(move || render("{{ a }}", &deep, &Budget::default())).unwrap_err();
        assert!(err.contains("recursion limit"), "{err}");
    }

    #[test]
    fn real_template_shapes_are_far_under_the_bound() {
        let chatml = measure_shape(tests::CHATML);
        assert!(chatml.max_tag_tokens * 10 < MAX_TAG_TOKENS, "{chatml:?}");
        let sets = "{% set x = 1 %}{% set y %}z{% endset %}{% for a in b %}{% if a %}{% elif b %}{% else %}{% endif %}{% endfor %}";
        assert_eq!(measure_shape(sets).max_block_depth, 3);
        assert_eq!(measure_shape(sets).max_tag_tokens, 4);
        check(sets).unwrap();
    }
}
