//! `render-template`: the Jinja dialect Hugging Face chat templates are written in,
//! lent to adapters as a host import.
//!
//! minijinja with Python string/dict methods (`pycompat`), `trim_blocks` and
//! `lstrip_blocks` (as transformers sets them), and the globals real templates
//! call: `raise_exception`, `strftime_now`; `tojson` is minijinja's own. Every
//! render runs on a fuel budget and an output cap, so a template from a registry
//! or a model file can loop or bloat only until it is stopped. Pure: no I/O.

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// Budgets for one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// minijinja fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Longest template source accepted, in bytes.
    pub max_template_bytes: usize,
    /// Longest rendered output accepted, in bytes.
    pub max_output_bytes: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            max_template_bytes: 1 << 20,
            max_output_bytes: 16 << 20,
        }
    }
}

/// Render `template` with the JSON object `context_json`.
///
/// ```
/// use lmhost::adapters::{render_template, TemplateLimits};
/// let out = render_template(
///     "{% for m in messages %}{{ m.role | upper }}: {{ m.content.strip() }}\n{% endfor %}",
///     r#"{"messages": [{"role": "user", "content": " hi "}]}"#,
///     &TemplateLimits::default(),
/// ).unwrap();
/// assert_eq!(out, "USER: hi\n");
/// ```
pub fn render_template(template: &str, context_json: &str, limits: &TemplateLimits) -> Result<String, String> {
    if template.len() > limits.max_template_bytes {
        return Err(format!(
            "template is {} bytes, over the limit of {} bytes",
            template.len(),
            limits.max_template_bytes
        ));
    }
    let context: serde_json::Value =
        serde_json::from_str(context_json).map_err(|e| format!("template context is not valid JSON: {e}"))?;
    if !context.is_object() {
        return Err("template context must be a JSON object".into());
    }
    let env = environment(limits);
    let rendered = env
        .render_str(template, Value::from_serialize(&context))
        .map_err(describe)?;
    if rendered.len() > limits.max_output_bytes {
        return Err(format!(
            "template output is {} bytes, over the limit of {} bytes",
            rendered.len(),
            limits.max_output_bytes
        ));
    }
    Ok(rendered)
}

/// Whether `template` parses (no rendering).
pub fn check_template(template: &str) -> Result<(), String> {
    let env = environment(&TemplateLimits::default());
    env.template_from_str(template).map(|_| ()).map_err(describe)
}

fn environment(limits: &TemplateLimits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(64);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| -> Result<String, Error> {
        use std::fmt::Write;
        let mut out = String::new();
        write!(out, "{}", chrono::Local::now().format(&format))
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("bad strftime format `{format}`")))?;
        Ok(out)
    });
    env
}

fn describe(err: Error) -> String {
    let mut msg = match (err.kind(), err.detail()) {
        (ErrorKind::OutOfFuel, _) => "template ran out of fuel (too much work)".to_string(),
        (ErrorKind::InvalidOperation, Some(detail)) => format!("template raised an exception: {detail}"),
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
        render_template(t, ctx, &TemplateLimits::default())
    }

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

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
        assert_eq!(out, r#"[1,"a"] True 1"#, "booleans print as Jinja2 prints them");
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
        let limits = TemplateLimits {
            max_output_bytes: 10,
            ..TemplateLimits::default()
        };
        let err = render_template("{{ 'x' * 100 }}", "{}", &limits).unwrap_err();
        assert!(err.contains("over the limit of 10 bytes"), "{err}");
    }

    #[test]
    fn context_must_be_an_object() {
        assert!(render("x", "[1]").unwrap_err().contains("JSON object"));
        assert!(render("x", "{").unwrap_err().contains("not valid JSON"));
    }
}
