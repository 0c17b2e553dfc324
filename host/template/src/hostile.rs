//! Deep-structure templates of every shape known to make a recursive-descent
//! parser, its code generator or the drop of its syntax tree recurse once per
//! term: the class behind "a 20 KB template aborts the host". Shared by the unit
//! tests, the fuzz corpus, the integration tests and `examples/stack_probe.rs`,
//! so a new family added here is tested everywhere.

/// Every family [`chain`] knows.
pub const FAMILIES: &[&str] = &[
    "plus",
    "minus",
    "mul",
    "pow",
    "tilde",
    "concat",
    "cmp",
    "eq",
    "and",
    "or",
    "in",
    "notin",
    "is",
    "attr",
    "subscript",
    "call",
    "filter",
    "filter_args",
    "not",
    "neg",
    "ternary",
    "ternary_else",
    "list",
    "tuple",
    "paren",
    "dict",
    "set",
    "set_block",
    "if_tag",
    "for_tag",
    "elif",
    "nested_if",
    "nested_for",
    "macro_call",
];

/// A template holding one `family` structure `terms` deep, or `None` for an
/// unknown family.
pub fn chain(family: &str, terms: usize) -> Option<String> {
    let n = terms;
    let rep = |s: &str| s.repeat(n);
    Some(match family {
        "plus" => format!("{{{{ 1{} }}}}", rep(" + 1")),
        "minus" => format!("{{{{ 1{} }}}}", rep(" - 1")),
        "mul" => format!("{{{{ 1{} }}}}", rep(" * 1")),
        "pow" => format!("{{{{ 1{} }}}}", rep(" ** 1")),
        "tilde" => format!("{{{{ 'a'{} }}}}", rep(" ~ 'a'")),
        "concat" => format!("{{{{ 'a'{} }}}}", rep(" + 'a'")),
        "cmp" => format!("{{{{ a{} }}}}", rep(" < a")),
        "eq" => format!("{{{{ a{} }}}}", rep(" == a")),
        "and" => format!("{{{{ a{} }}}}", rep(" and a")),
        "or" => format!("{{{{ a{} }}}}", rep(" or a")),
        "in" => format!("{{{{ a{} }}}}", rep(" in a")),
        "notin" => format!("{{{{ a{} }}}}", rep(" not in a")),
        "is" => format!("{{{{ (a{}) }}}}", rep(" is defined == true")),
        "attr" => format!("{{{{ a{} }}}}", rep(".a")),
        "subscript" => format!("{{{{ a{} }}}}", rep("[0]")),
        "call" => format!("{{{{ a{} }}}}", rep("()")),
        "filter" => format!("{{{{ a{} }}}}", rep("|e")),
        "filter_args" => format!("{{{{ a{} }}}}", rep("|replace('a', 'b')")),
        "not" => format!("{{{{ {}a }}}}", rep("not ")),
        "neg" => format!("{{{{ {}1 }}}}", rep("- ")),
        "ternary" => format!("{{{{ a{} }}}}", rep(" if a else a")),
        "ternary_else" => format!("{{{{ {}a }}}}", rep("a if a else ")),
        "list" => format!("{{{{ {}1{} }}}}", rep("["), rep("]")),
        "tuple" => format!("{{{{ {}1{} }}}}", rep("(1, "), rep(")")),
        "paren" => format!("{{{{ {}1{} }}}}", rep("("), rep(")")),
        "dict" => format!("{{{{ {}1{} }}}}", rep("{'a': "), rep("}")),
        "set" => format!("{{% set x = 1{} %}}", rep(" + 1")),
        "set_block" => format!("{}x{}", rep("{% set x %}"), rep("{% endset %}")),
        "if_tag" => format!("{{% if a{} %}}x{{% endif %}}", rep(" and a")),
        "for_tag" => format!("{{% for x in a{} %}}x{{% endfor %}}", rep("|list")),
        "elif" => format!("{{% if a %}}{}{{% endif %}}", rep("{% elif a %}x")),
        "nested_if" => format!("{}x{}", rep("{% if a %}"), rep("{% endif %}")),
        "nested_for" => format!("{}x{}", rep("{% for x in a %}"), rep("{% endfor %}")),
        "macro_call" => format!("{{{{ f(){} }}}}", rep(" + f(a=a|e, b=[a.b])")),
        _ => return None,
    })
}
