"""`{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang python`.

A minimal chat-template adapter: the prompt is the model's chat template (or the
entry's `custom_chat_template`) rendered by the host; the answer is the raw output
stripped, cut after `output_split_prefix` / `cot_end_tag`, with every match of the
`eos_to_cull` regex removed (Python `re` dialect). The resource `response-stream`
lives in `model_adapter.py`. Change what you need, then `lmhost adapter build`
and `lmhost adapter check {{name}}.wasm`.

Exported functions return their ok value or raise `Err(AdapterError_...)`; any
other exception traps, which lmhost reports as a crashed adapter.
"""
import json
import re

from componentize_py_types import Err
from wit_world.exports import ModelAdapter as ModelAdapterBase
from wit_world.imports import host
from wit_world.imports.types import (
    AdapterError_InvalidInput,
    AdapterError_Unsupported,
    Completion,
    Prompt,
    Request_Prompt,
)


def invalid(message):
    return Err(AdapterError_InvalidInput(message))


def parse_spec(model):
    try:
        spec = json.loads(model.spec_json)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        raise invalid(f"registry entry of `{model.name}` is not a JSON object")
    return spec


def string_key(model, spec, key):
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise invalid(f"`{key}` of `{model.name}` must be a string")


def choose_template(model, spec):
    custom = string_key(model, spec, "custom_chat_template")
    premade = spec.get("premade_chat_template")
    premade = True if not isinstance(premade, bool) else premade
    if not premade and custom is not None:
        return custom
    if model.builtin_template is not None:
        return model.builtin_template
    if custom is not None:
        return custom
    raise Err(AdapterError_Unsupported(
        f"`{model.name}` has no chat template: the model file ships none and the entry sets no `custom_chat_template`"
    ))


def post_process(model, raw):
    spec = parse_spec(model)
    text = raw.strip()
    prefix = string_key(model, spec, "output_split_prefix")
    if prefix is not None and prefix in text:
        text = text.rpartition(prefix)[2]
    tag = string_key(model, spec, "cot_end_tag")
    if tag is not None and tag in text:
        text = text.rpartition(tag)[2].strip()
    pattern = string_key(model, spec, "eos_to_cull")
    if pattern is not None:
        try:
            text = re.sub(pattern, "", text)
        except re.error as e:
            raise invalid(f"`eos_to_cull` of `{model.name}` is not a valid regex: {e}")
    return text


def completion(text):
    return Completion(text=text, prompt_tokens=None, completion_tokens=None, finish_reason=None)


class ModelAdapter(ModelAdapterBase):
    def shape_request(self, model, messages, params):
        template = choose_template(model, parse_spec(model))
        context = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "add_generation_prompt": True,
            "bos_token": model.bos_token or "",
            "eos_token": model.eos_token or "",
        }
        try:
            text = host.render_template(template, json.dumps(context, ensure_ascii=False))
        except Err as e:
            raise invalid(f"chat template of `{model.name}` failed to render: {e.value}")
        # A template that writes the BOS token itself must not get a second one.
        starts_with_bos = bool(model.bos_token) and text.startswith(model.bos_token)
        return Request_Prompt(Prompt(text=text, stop=params.stop, add_bos=model.add_bos and not starts_with_bos))

    def parse_response(self, model, raw):
        return completion(post_process(model, raw))
