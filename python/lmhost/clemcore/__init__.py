"""lmhost as a clemcore backend: clembench games played by models lmhost runs.

clemcore finds backends as ``<name>_api.py`` files in the current working
directory. ``python -m lmhost.clemcore install`` puts ``lmhost_api.py`` there;
it only re-exports :class:`LmhostBackend` from this module. Then registry
entries with ``"backend": "lmhost"`` in clemcore's ``model_registry.json``
(also in the current working directory) name the model lmhost runs::

    [
      {"model_name": "smollm2-lmhost", "backend": "lmhost",
       "model_config": {"lmhost_model": "SmolLM2-135M-Instruct"}},
      {"model_name": "smollm2-small-context", "backend": "lmhost",
       "model_config": {"lmhost_spec": {"model_name": "SmolLM2-135M-Instruct",
                                        "backend": "llamacpp",
                                        "model_config": {"n_ctx": 2048}}}}
    ]

Keys (inside ``model_config``, or at the entry's top level as
``clem register model`` writes them; not both with different values):

``lmhost_model``
    An lmhost registry name, or a dict query unified with lmhost's registry
    entries (e.g. ``{"model_name": "X", "backend": "huggingface_local"}``).
``lmhost_spec``
    A whole lmhost registry entry (clemcore's format, with ``model_name`` and
    ``backend``), for a model no registry names or one with changed keys.
    It is unified with lmhost's entries like any query, so the keys it adds
    (``n_ctx``, ``temperature``, ...) apply to the entry of that name.
neither
    The entry's own ``model_name`` is the lmhost registry name.

At most one of ``lmhost_model`` and ``lmhost_spec`` may be given, and neither
may name the backend ``lmhost`` (it would point back here). lmhost reads
``./model_registry.json`` as well but skips its ``"backend": "lmhost"``
entries, so a clemcore entry may carry the name of the lmhost model it runs::

    [{"model_name": "SmolLM2-135M-Instruct", "backend": "lmhost"}]

Messages are prepared as clemcore's own backends prepare them (an empty
leading system message dropped, consecutive turns of one role joined); a
message with an ``image`` is refused, as lmhost takes text. What the backend
returns is clemcore's triple ``(prompt, response, response_text)``:

* ``prompt``: for local engines (llamacpp, huggingface_local) the dict
  clemcore's own local backends record, ``{"inputs": <the exact prompt text
  lmhost rendered>, "max_new_tokens": ..., "temperature": ...}`` (plus any
  further sampling parameter the run set); for remote engines the exact HTTP
  request body lmhost sent.
* ``response``: for local engines ``{"response": <raw engine output>,
  "finish_reason": ..., "usage": {...}}`` plus ``"cot_content"`` when the model
  reasoned; for remote engines the raw HTTP response body. clemcore adds its
  ``clem_player`` record to it.
* ``response_text``: the answer, post-processed by the model's adapter.

Generation parameters come from clemcore's run options (``-t/--temperature``,
``-l/--max_tokens``; other gen_args lmhost knows, such as ``top_p`` or
``seed``, pass through too). A prompt that does not fit the context raises
clemcore's ``ContextExceededError`` with the token counts. The model is a
``BatchGenerativeModel``: with ``clem run -b N`` clemcore hands it batches,
which lmhost decodes together (``Model.generate_batch``).

One :class:`lmhost.Host` serves the whole process (:func:`get_host`; built on
first use from the environment: ``$LMHOST_HOME``, ``$LMHOST_MODELS_DIR``);
:func:`set_host` replaces it, e.g. with one that reads extra registry files.
Each lmhost model is loaded once per process, however many clemcore entries or
players use it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BACKEND_NAME",
    "MODEL_KEY",
    "SPEC_KEY",
    "LmhostBackend",
    "LmhostModel",
    "get_host",
    "set_host",
    "lmhost_query",
    "ContextExceededError",
]

#: The backend name clemcore knows this backend by (from ``lmhost_api.py``).
BACKEND_NAME = "lmhost"
#: Registry key: an lmhost model name or query.
MODEL_KEY = "lmhost_model"
#: Registry key: a whole lmhost registry entry.
SPEC_KEY = "lmhost_spec"

# clemcore is imported on first use of a name below, not with this package:
# importing clemcore configures logging (a clembench.log in the current folder),
# which `python -m lmhost.clemcore install` should not do.
_LAZY = ("LmhostBackend", "LmhostModel", "get_host", "set_host", "lmhost_query", "ContextExceededError")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from lmhost.clemcore import _backend

        return getattr(_backend, name)
    raise AttributeError(f"module 'lmhost.clemcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
