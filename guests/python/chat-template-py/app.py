"""`chat-template` in Python: the lmhost adapter for local models, clembench's semantics.

Contract `lmhost:adapter@0.2.0`, with the same prompts, tool calls and
reasoning as the Rust adapter (`calls.py`).

Request: the chat template is the one shipped in the model file, unless the
registry entry sets `premade_chat_template: false` and a `custom_chat_template`
(or the model file has none). The host renders it; the adapter picks it and
passes what transformers passes (messages with their tool calls and results,
`tools`, `add_generation_prompt`, the special tokens, `chat_template_kwargs`).
A template that does not read `tools` gets lmhost's fallback (the tools in the
system message, calls in the assistant's text, results as `<tool_response>`
user turns). A required or named `tool_choice` is a constraint the engine
enforces; `auto` a lazy one.

Response, in clembench's order: the reasoning and the tool calls are taken out;
strip whitespace; if `output_split_prefix` is set and present, keep what follows
its last occurrence; if only `cot_end_tag` is set and present, keep what follows
its last occurrence (stripped again); then remove every match of the
`eos_to_cull` regex (Python `re` dialect).

The resource `response-stream` lives in `model_adapter.py` (componentize-py looks
exported resources up in a module named after their interface).
"""
import json
import re

from wit_world.exports import ModelAdapter as ModelAdapterBase
from wit_world.imports import host
from wit_world.imports.types import (
    AdapterError_InvalidInput,
    AdapterError_Unsupported,
    Completion,
    Constraint,
    ModelInfo,
    Prompt,
    Request_Prompt,
    ResponseFormat_Text,
    ToolCall,
    ToolChoice_Auto,
    ToolChoice_Named,
    ToolChoice_None_,
    ToolChoice_Required,
)
from componentize_py_types import Err

import calls


def to_json(value) -> str:
    """Compact JSON, as serde_json writes it in the Rust adapter."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def invalid(message: str) -> Err:
    return Err(AdapterError_InvalidInput(message))


def parse_spec(model: ModelInfo) -> dict:
    try:
        spec = json.loads(model.spec_json)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise invalid(f"registry entry of `{model.name}` is not a JSON object")
    return spec


def string_key(model: ModelInfo, spec: dict, key: str):
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"`{key}` of `{model.name}` must be a string, found {to_json(value)}")


def choose_template(model: ModelInfo, spec: dict) -> str:
    custom = string_key(model, spec, "custom_chat_template")
    premade = spec.get("premade_chat_template")
    if premade is None:
        premade = True
    elif not isinstance(premade, bool):  # bool first: in Python, 1 is not a bool but True is an int
        raise invalid(
            f"`premade_chat_template` of `{model.name}` must be true or false, found {to_json(premade)}"
        )
    builtin = model.builtin_template
    if not premade and custom is not None:
        return custom
    if builtin is not None:
        return builtin
    if custom is not None:
        return custom
    raise Err(AdapterError_Unsupported(
        f"`{model.name}` has no chat template: the model file ships none and the registry entry "
        "sets no `custom_chat_template`"
    ))


_SPECIAL = set(".^$*+?{}[]|()\\")


def literal(pattern: str):
    """The text a regex matches when it is plain text with escaped punctuation, else None."""
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            nxt = next(chars, None)
            # `\|` is `|`; `\d`, `\n`, a trailing `\` are regex syntax.
            if nxt is None or not nxt.isascii() or nxt.isalnum() or nxt.isspace():
                return None
            out.append(nxt)
        elif c in _SPECIAL:
            return None
        else:
            out.append(c)
    return "".join(out) or None


class PostProcess:
    """The output rules of one registry entry (without the cot end tag when the
    reasoning parser reads the tags)."""

    def __init__(self, model: ModelInfo, reasoning_parsed: bool = False):
        spec = parse_spec(model)
        self.split_prefix = string_key(model, spec, "output_split_prefix") or None
        self.cot_end_tag = None if reasoning_parsed else (string_key(model, spec, "cot_end_tag") or None)
        pattern = string_key(model, spec, "eos_to_cull") or None
        self.cull = None
        self.cull_text = None
        if pattern is not None:
            # Most patterns are an escaped token (`<\\|im_end\\|>`): match it as text
            # rather than compile a regex in every fresh instance.
            self.cull_text = literal(pattern)
            if self.cull_text is None:
                try:
                    self.cull = re.compile(pattern)
                except re.error as e:
                    raise invalid(f"`eos_to_cull` of `{model.name}` is not a valid regex `{pattern}`: {e}")

    def apply(self, raw: str) -> str:
        text = raw.strip()
        if self.split_prefix is not None:
            head, sep, after = text.rpartition(self.split_prefix)
            if sep:
                text = after
        if self.cot_end_tag is not None:
            head, sep, after = text.rpartition(self.cot_end_tag)
            if sep:
                text = after.strip()
        if self.cull_text is not None:
            text = text.replace(self.cull_text, "")
        elif self.cull is not None:
            text = self.cull.sub("", text)
        return text


RESERVED = ("messages", "tools", "documents", "add_generation_prompt")


def template_context(model: ModelInfo, spec: dict, messages, tools, tool_list) -> dict:
    """The variables transformers passes a chat template, in its order; the
    entry's `chat_template_kwargs` last (they may override a token, as there)."""
    kwargs = spec.get("chat_template_kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise invalid(f"`chat_template_kwargs` of `{model.name}` must be an object, found {to_json(kwargs)}")
    for key in RESERVED:
        if key in kwargs:
            raise invalid(f"`chat_template_kwargs` of `{model.name}` sets `{key}`, which lmhost passes itself")
    ends_on_assistant = bool(messages) and messages[-1].role == "assistant" and not messages[-1].tool_calls
    if not tools.native:
        messages = calls.fallback_messages(messages, tools.format, tool_list if tools.active else [])
    mistral_ids = tools.native and tools.format == "mistral"
    return {
        "messages": [calls.message_json(m, mistral_ids) for m in messages],
        "tools": [calls.tool_json(t) for t in tool_list] if tools.active and tools.native else None,
        "documents": None,
        "add_generation_prompt": not ends_on_assistant,
        "bos_token": model.bos_token or "",
        "eos_token": model.eos_token or "",
        **kwargs,
    }


def continue_final(model: ModelInfo, rendered: str, last: str) -> str:
    """The prompt cut just after the final assistant message's text, so the
    model goes on with it (transformers' `continue_final_message`)."""
    last = last.strip()
    at = rendered.rfind(last)
    if at < 0:
        raise invalid(
            f"the chat of `{model.name}` ends on an assistant message to continue, but its chat template "
            "does not write that message's text into the prompt"
        )
    return rendered[: at + len(last)]


def completion(text: str, reasoning=None, tool_calls=()) -> Completion:
    return Completion(
        text=text,
        reasoning=reasoning or None,
        tool_calls=list(tool_calls),
        prompt_tokens=None,
        completion_tokens=None,
        reasoning_tokens=None,
        finish_reason=None,
    )


class Tools:
    """What a call does with tools: the format calls are written in, whether the
    template reads `tools` itself, and whether the model may call any."""

    def __init__(self, model: ModelInfo, spec: dict, template: str, params):
        name = string_key(model, spec, "tool_call_format")
        named = None
        if name is not None:
            named = calls.format_from_name(name)
            if named is None:
                raise invalid(
                    f"`tool_call_format` of `{model.name}` is `{name}`, not one of: "
                    + ", ".join(calls.known_names())
                )
        detected = calls.detect_format(template)
        self.format = named or detected or "hermes"
        self.native = "tools" in template
        self.active = bool(params.tools) and not isinstance(params.tool_choice, ToolChoice_None_)

    def constraint(self, model: ModelInfo, params):
        if not self.active:
            return None
        choice = params.tool_choice
        if isinstance(choice, ToolChoice_Required):
            specs, lazy = calls.specs(model, params.tools, None), False
        elif isinstance(choice, ToolChoice_Named):
            specs, lazy = calls.specs(model, params.tools, choice.value), False
        elif isinstance(choice, ToolChoice_Auto) and not isinstance(params.response_format, ResponseFormat_Text):
            return None
        elif isinstance(choice, ToolChoice_Auto) and calls.MARKERS.get(self.format):
            specs, lazy = calls.specs(model, params.tools, None), True
        else:
            return None
        prefix, schema, suffix = calls.constraint(self.format, specs)
        return Constraint(prefix=prefix, schema=schema, suffix=suffix, lazy=lazy)


def read_output(model: ModelInfo, params, request, raw: str) -> Completion:
    """The engine's whole output: reasoning and calls taken out, then clembench's rules."""
    spec = parse_spec(model)
    try:
        template = choose_template(model, spec)
    except Err:
        template = ""
    tools = Tools(model, spec, template, params)
    start = string_key(model, spec, "cot_start_tag") or None
    end = string_key(model, spec, "cot_end_tag") or None
    if start and end:
        tags = (start, end)
    elif end:
        tags = None  # a lone end tag keeps clembench's rule
    else:
        tags = ("<think>", "</think>") if "</think>" in template else None
    prompt = request.value.text if isinstance(request, Request_Prompt) else ""
    in_reasoning = tags is not None and prompt.rstrip().endswith(tags[0])
    fmt = tools.format if tools.active else None
    text, reasoning, found = [], [], []
    for kind, value in calls.parse(fmt, tags, in_reasoning, raw):
        if kind == "text":
            text.append(value)
        elif kind == "reasoning":
            reasoning.append(value)
        elif kind == "call":
            found.append(ToolCall(id=value.get("id") or "", name=value["name"], arguments=value["arguments"]))
        else:
            raw_text, reason = value
            host.log(host.LogLevel.WARN, f"`{model.name}` wrote a tool call that is not one ({reason}); kept as text")
            text.append(raw_text)
    post = PostProcess(model, reasoning_parsed=tags is not None)
    return completion(post.apply("".join(text)), "".join(reasoning), found)


class ModelAdapter(ModelAdapterBase):
    def shape_request(self, model, messages, params):
        spec = parse_spec(model)
        template = choose_template(model, spec)
        tools = Tools(model, spec, template, params)
        context = template_context(model, spec, messages, tools, params.tools)
        try:
            # An imported `result<string, string>` returns the ok value or raises Err(str).
            text = host.render_template(template, to_json(context))
        except Err as e:
            raise invalid(f"chat template of `{model.name}` failed to render: {e.value}")
        if not context["add_generation_prompt"]:
            text = continue_final(model, text, messages[-1].content)
        # A template that writes the BOS token itself must not get a second one.
        bos = model.bos_token
        starts_with_bos = bool(bos) and text.startswith(bos)
        return Request_Prompt(
            Prompt(
                text=text,
                stop=params.stop,
                add_bos=model.add_bos and not starts_with_bos,
                constraint=tools.constraint(model, params),
            )
        )

    def parse_response(self, model, params, request, raw):
        return read_output(model, params, request, raw)
