"""The exported resource `response-stream` of interface `model-adapter`.

componentize-py requires exported resources to be classes in a module named after
the exported interface (`model_adapter`). This one buffers: `push` emits nothing
and `finish` returns the whole post-processed text (a valid, if lazy, stream).
"""
from wit_world.exports import model_adapter

from app import PostProcess, completion


class ResponseStream(model_adapter.ResponseStream):
    def __init__(self, model):
        self.model = model
        self.raw = []
        # No validation here: a WIT constructor cannot return an error, so raising
        # would trap. Errors surface from `finish` (a `result`).

    def push(self, chunk):
        self.raw.append(chunk)
        return ""

    def finish(self):
        return completion(PostProcess(self.model).apply("".join(self.raw)))
