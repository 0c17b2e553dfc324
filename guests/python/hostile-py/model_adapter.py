"""The exported `response-stream` resource: passes text through unchanged."""
from wit_world.exports import model_adapter

from app import Completion


class ResponseStream(model_adapter.ResponseStream):
    def __init__(self, model):
        self.raw = []

    def push(self, chunk):
        self.raw.append(chunk)
        return chunk

    def finish(self):
        return Completion(text="".join(self.raw), prompt_tokens=None, completion_tokens=None, finish_reason=None)
