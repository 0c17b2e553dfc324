"""Tool calls and reasoning as model families write them: the Python twin of the
Rust `chat-formats` library (same formats, same constraint schemas, same
fallback prompt, same reading of an output), for a whole output at once (this
adapter's stream reads the output at its end).

Formats: `hermes` (`<tool_call>{"name": …, "arguments": {…}}</tool_call>`),
`llama3` (a bare `{"name": …, "parameters": {…}}`, or after `<|python_tag|>`),
`mistral` (`[TOOL_CALLS][{…}]` or `[TOOL_CALLS]name[ARGS]{…}`); reasoning between
tags. A call that does not parse is reported as malformed with its raw text.
"""
import json

from componentize_py_types import Err
from wit_world.imports.types import AdapterError_InvalidInput, Message

FORMAT_NAMES = {
    "hermes": ("hermes", "qwen", "qwen2.5", "qwen3"),
    "llama3": ("llama3", "llama3_json", "llama3.1", "llama3.2", "llama3.3"),
    "mistral": ("mistral",),
}
# The text that opens a call; Llama 3's calls are a bare JSON object.
MARKERS = {"hermes": "<tool_call>", "mistral": "[TOOL_CALLS]", "llama3": None}
MAX_NAME_BYTES = 256


def compact(value) -> str:
    """JSON as serde_json writes a value in the Rust library: compact, keys sorted."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def known_names():
    return [n for names in FORMAT_NAMES.values() for n in names]


def format_from_name(name: str):
    name = name.strip().lower()
    return next((f for f, names in FORMAT_NAMES.items() if name in names), None)


def detect_format(template: str):
    if "[TOOL_CALLS]" in template:
        return "mistral"
    if "<tool_call>" in template:
        return "hermes"
    if "<|python_tag|>" in template or "Environment: ipython" in template:
        return "llama3"
    return None


def specs(model, tools, named):
    out = []
    for tool in tools:
        if named is not None and tool.name != named:
            continue
        if tool.parameters is None:
            parameters = {"type": "object"}
        else:
            try:
                parameters = json.loads(tool.parameters)
            except ValueError as e:
                raise Err(AdapterError_InvalidInput(f"the parameters of tool `{tool.name}` are not JSON: {e}"))
        out.append((tool.name, parameters))
    return out


def constraint(fmt: str, tool_specs):
    """(prefix, schema JSON text, suffix): one call of one of the tools."""
    args_key = "parameters" if fmt == "llama3" else "arguments"
    objects = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, args_key: parameters},
            "required": ["name", args_key],
            "additionalProperties": False,
        }
        for name, parameters in tool_specs
    ]
    one = objects[0] if len(objects) == 1 else {"anyOf": objects}
    if fmt == "hermes":
        return "<tool_call>\n", compact(one), "\n</tool_call>"
    if fmt == "llama3":
        return "", compact(one), ""
    return "[TOOL_CALLS]", compact({"type": "array", "items": one, "minItems": 1}), ""


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def render_calls(fmt: str, calls) -> str:
    """`calls` ((name, arguments text) pairs) as the model would write them."""

    def obj(name, arguments, key):
        args = arguments if _is_json(arguments) else json.dumps(arguments, ensure_ascii=False)
        return '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "' + key + '": ' + args + "}"

    if fmt == "hermes":
        return "\n".join(f"<tool_call>\n{obj(n, a, 'arguments')}\n</tool_call>" for n, a in calls)
    if fmt == "llama3":
        return "; ".join(obj(n, a, "parameters") for n, a in calls)
    return "[TOOL_CALLS][" + ", ".join(obj(n, a, "arguments") for n, a in calls) + "]"


def _raw_object(text: str):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def tool_json(tool) -> dict:
    """A tool as transformers passes it: `{"type": "function", "function": {…}}`."""
    if tool.parameters is None:
        parameters = {"type": "object", "properties": {}}
    else:
        parameters = _raw_object(tool.parameters)
        if parameters is None:
            raise Err(AdapterError_InvalidInput(f"the parameters of tool `{tool.name}` are not a JSON object"))
    function = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = parameters
    return {"type": "function", "function": function}


def mistral_id(call_id: str) -> str:
    """Mistral's templates require ids of 9 letters and digits (FNV-1a, as in Rust)."""
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    h = 0xCBF29CE484222325
    for b in call_id.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    out = []
    for _ in range(9):
        out.append(digits[h % 62])
        h //= 62
    return "".join(out)


def message_json(m, mistral_ids: bool) -> dict:
    """A message as transformers passes it (and as the template corpus renders
    it): role, then for a tool result tool_call_id and name before content,
    else content and the calls; only the keys it has."""
    ident = mistral_id if mistral_ids else (lambda i: i)
    if m.tool_call_id is not None:
        out = {"role": m.role, "tool_call_id": ident(m.tool_call_id)}
        if m.name is not None:
            out["name"] = m.name
        out["content"] = m.content
        return out
    out = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": ident(c.id),
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": _raw_object(c.arguments) if _raw_object(c.arguments) is not None else c.arguments,
                },
            }
            for c in m.tool_calls
        ]
    if m.name is not None:
        out["name"] = m.name
    if m.reasoning is not None:
        out["reasoning_content"] = m.reasoning
    return out


def _plain(role, content, reasoning=None):
    return Message(role=role, content=content, tool_calls=[], tool_call_id=None, name=None, reasoning=reasoning)


def _to_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fallback_messages(messages, fmt: str, tools):
    """The messages for a template without tool support: the tools described in
    the system message, calls written into the assistant's text, results as a
    user turn of `<tool_response>` blocks (consecutive ones merged)."""
    out = []
    skip = 0
    if tools:
        described = (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        )
        for tool in tools:
            described += "\n" + _to_json(tool_json(tool))
        example = render_calls(fmt, [("function_name", '{"argument": "value"}')])
        described += f"\n</tools>\n\nTo call a function, write its name and arguments in this form:\n{example}"
        if messages and messages[0].role == "system":
            out.append(_plain("system", f"{messages[0].content}\n\n{described}"))
            skip = 1
        else:
            out.append(_plain("system", described))
    for m in messages[skip:]:
        if m.role == "tool":
            block = f"<tool_response>\n{m.content}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.startswith("<tool_response>"):
                out[-1].content += "\n" + block
            else:
                out.append(_plain("user", block))
        elif m.role == "assistant" and m.tool_calls:
            written = render_calls(fmt, [(c.name, c.arguments) for c in m.tool_calls])
            text = m.content.strip()
            out.append(_plain("assistant", f"{text}\n{written}" if text else written, m.reasoning))
        else:
            out.append(m)
    return out


def _named_call(value, args_keys):
    """`{"name": …, <args key>: {…}, "id"?: …}` as a call dict, or an error string."""
    if not isinstance(value, dict):
        return None, "a call must be a JSON object"
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return None, "a call needs a `name` string"
    args = next((value[k] for k in args_keys if k in value), None)
    if args is None and not any(k in value for k in args_keys):
        arguments = "{}"
    elif isinstance(args, dict):
        arguments = compact(args)
    elif isinstance(args, str) and isinstance(_raw_object(args), dict):
        arguments = compact(_raw_object(args))
    else:
        return None, f"the arguments of `{name}` are not a JSON object"
    call_id = value.get("id")
    return {"id": call_id if isinstance(call_id, str) and call_id else None, "name": name, "arguments": arguments}, None


def _json_at(text: str, i: int):
    """(value, end) of the JSON value at `i` (after whitespace), or (None, error position)."""
    j = i
    while j < len(text) and text[j].isspace():
        j += 1
    try:
        return json.JSONDecoder().raw_decode(text, j)
    except ValueError as e:
        return None, max(getattr(e, "pos", len(text)) + 1, i + 1)


def _llama3_call(value):
    if not isinstance(value, dict) or "name" not in value or len(value) != 2:
        return None, "not a call object"
    if "parameters" not in value and "arguments" not in value:
        return None, "not a call object"
    return _named_call(value, ("parameters", "arguments"))


def _calls(fmt: str, text: str):
    """Text with calls in `fmt`: events in order."""
    events = []
    marker = "<|python_tag|>" if fmt == "llama3" else MARKERS[fmt]
    may_start = True
    i = 0

    def emit_text(piece):
        nonlocal may_start
        if piece:
            if piece.strip():
                may_start = False
            events.append(("text", piece))

    while i < len(text):
        if fmt == "llama3" and may_start:
            j = i
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] == "{":
                emit_text(text[i:j])
                value, end = _json_at(text, j)
                call, _ = _llama3_call(value) if value is not None else (None, None)
                if call is not None:
                    events.append(("call", call))
                    may_start = True
                else:
                    emit_text(text[j : min(end, len(text))])
                    may_start = False
                i = min(end, len(text))
                continue
            if j == len(text):
                emit_text(text[i:])
                break
        at = text.find(marker, i)
        if at < 0:
            emit_text(text[i:])
            break
        emit_text(text[i:at])
        i = at + len(marker)
        if fmt == "hermes":
            close = text.find("</tool_call>", i)
            end = close + len("</tool_call>") if close >= 0 else len(text)
            body = text[i:close] if close >= 0 else text[i:]
            try:
                call, reason = _named_call(json.loads(body.strip()), ("arguments", "parameters"))
            except ValueError as e:
                call, reason = None, f"not JSON: {e}"
        elif fmt == "llama3":
            value, end = _json_at(text, i)
            end = min(end, len(text))
            call, reason = _llama3_call(value) if value is not None else (None, "not JSON")
        else:
            call, reason, end = _mistral(text, i)
        raw = marker + text[i:end]
        i = end
        if call is None:
            events.append(("malformed", (raw, reason)))
            may_start = False
        else:
            for c in call if isinstance(call, list) else [call]:
                events.append(("call", c))
            may_start = True
    return events


def _mistral(text: str, i: int):
    """(call or calls, reason, end) after `[TOOL_CALLS]`."""
    rest = text[i:].lstrip()
    lead = len(text) - i - len(rest)
    if not rest:
        return None, "nothing after [TOOL_CALLS]", len(text)
    if rest.startswith("["):
        value, end = _json_at(text, i)
        end = min(end, len(text))
        if not isinstance(value, list) or not value:
            return None, "[TOOL_CALLS] is not followed by a list of calls", end
        calls = []
        for item in value:
            call, reason = _named_call(item, ("arguments",))
            if call is None:
                return None, reason, end
            calls.append(call)
        return calls, None, end
    n = 0
    while n < len(rest) and (rest[n].isalnum() or rest[n] in "_-."):
        n += 1
    if n == 0 or not rest[n:].startswith("[ARGS]") or len(rest[:n].encode()) > MAX_NAME_BYTES:
        return None, "[TOOL_CALLS] is followed by neither a list nor `name[ARGS]`", i + lead + max(n, 1)
    start = i + lead + n + len("[ARGS]")
    value, end = _json_at(text, start)
    end = min(end, len(text))
    if not isinstance(value, dict):
        return None, "[ARGS] is not a JSON object", end
    raw = text[start:end].strip()
    return {"id": None, "name": rest[:n], "arguments": raw}, None, end


def parse(fmt, tags, in_reasoning: bool, output: str):
    """A whole output: [(kind, value)], kind one of text, reasoning, call, malformed."""
    events = []
    rest = output
    if tags is not None:
        start, end = tags
        opened = in_reasoning
        if not opened and rest.lstrip().startswith(start):
            rest = rest.lstrip()[len(start) :]
            opened = True
        if opened:
            at = rest.find(end)
            reasoning, rest = (rest[:at], rest[at + len(end) :]) if at >= 0 else (rest, "")
            if reasoning.strip():
                events.append(("reasoning", reasoning.strip()))
    if fmt is None:
        if rest:
            events.append(("text", rest))
        return events
    return events + _calls(fmt, rest)
