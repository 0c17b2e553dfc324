"""The exported resource `response-stream` of interface `model-adapter`.

componentize-py requires exported resources to be classes in a module named after
the exported interface (`model_adapter`). This one buffers: `push` emits nothing
and `finish` returns the whole post-processed text (a valid, if lazy, stream).
"""
from wit_world.exports import model_adapter

from wit_world.imports.types import Delta

from app import read_output


class ResponseStream(model_adapter.ResponseStream):
    def __init__(self, model, params, request):
        self.model = model
        self.params = params
        self.request = request
        self.raw = []
        # No validation here: a WIT constructor cannot return an error, so raising
        # would trap. Errors surface from `finish` (a `result`).

    def push(self, chunk):
        self.raw.append(chunk)
        return Delta(text="", reasoning="", tool_calls=[])

    def finish(self):
        return read_output(self.model, self.params, self.request, "".join(self.raw))
