"""The exported resource `response-stream` (componentize-py looks it up in a module
named after the interface, `model_adapter`). It buffers: `push` shows nothing and
`finish` returns the whole answer. The constructor cannot fail (raising traps), so
the entry is read in `finish`."""
from wit_world.exports import model_adapter

from app import completion, post_process


class ResponseStream(model_adapter.ResponseStream):
    def __init__(self, model):
        self.model = model
        self.raw = []

    def push(self, chunk):
        self.raw.append(chunk)
        return ""

    def finish(self):
        return completion(post_process(self.model, "".join(self.raw)))
