"""A test-only Python adapter that misbehaves on purpose (the registry entry's
`hostile` key picks how), to prove the sandbox holds for Python components too:
`loop` spins forever, `oom` allocates without end, `raise` lets an exception
escape (a trap), `file` tries to read /etc/passwd; anything else answers.
"""
import json

from wit_world.exports import ModelAdapter as ModelAdapterBase
from wit_world.imports.types import AdapterError_Unsupported, Completion, Prompt, Request_Prompt
from componentize_py_types import Err


class ModelAdapter(ModelAdapterBase):
    def shape_request(self, model, messages, params):
        mode = json.loads(model.spec_json).get("hostile", "")
        if mode == "loop":
            n = 0
            while True:
                n += 1
        if mode == "oom":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "raise":
            raise RuntimeError("hostile Python adapter raises on purpose")
        if mode == "file":
            try:
                with open("/etc/passwd") as f:
                    return Request_Prompt(Prompt(text=f.read(), stop=[], add_bos=False))
            except OSError as e:
                raise Err(AdapterError_Unsupported(f"read-file denied: {e}"))
        text = "\n".join(m.content for m in messages)
        return Request_Prompt(Prompt(text=text, stop=[], add_bos=False))

    def parse_response(self, model, raw):
        return Completion(text=raw, prompt_tokens=None, completion_tokens=None, finish_reason=None)
