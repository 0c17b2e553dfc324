"""clemcore backend "lmhost": models run by lmhost (see lmhost.clemcore).

clemcore loads every <name>_api.py in the working directory as the backend
<name>; put this file there with `python -m lmhost.clemcore install`.
"""

from lmhost.clemcore import LmhostBackend, LmhostModel  # noqa: F401
