"""Schemathesis hooks of the contract run (``test_contract_run.py``), loaded by the
schemathesis command line from ``SCHEMATHESIS_HOOKS``. They change what is generated,
never what is checked:

* ``min_position`` is kept sane: a generated position the read models have not
  reached would be answered, as documented, 503 after waiting 5 s, which the
  ``not_a_server_error`` check counts as a server error, and slows the run; one they
  have reached (``/health``'s ``read_models_position``) is answered at once, however
  busy the machine. Values that are no position at all (``0``, text) are left to be
  refused.
* Half the generated record ids are replaced by real ones (``CONTRACT_RECORDS``), so
  that requests reach the business rules instead of stopping at a 404. Which half
  depends on the generated id, so a seeded run stays the same run.
"""

from __future__ import annotations

import json
import os
from typing import Any
from uuid import UUID

import httpx
import schemathesis

RECORDS: dict[str, str] = json.loads(os.environ.get("CONTRACT_RECORDS", "{}"))
"""Path parameter name → the id of a real record (``client_id``, ``deal_id``, ``task_id``)."""
BASE_URL = os.environ.get("CONTRACT_BASE_URL", "")


def _reached() -> int:
    with httpx.Client(base_url=BASE_URL, timeout=10.0, trust_env=False) as http:
        return int(http.get("/health").json()["read_models_position"])


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Applied to the cases of every phase (the coverage phase applies no other map
    hook); its values may come as text."""
    position = (case.query or {}).get("min_position")
    if isinstance(position, str) and position.isdigit():
        position = int(position)
    if isinstance(position, int) and not isinstance(position, bool) and position > 1:
        case.query["min_position"] = min(position, _reached())
    for name, value in list((case.path_parameters or {}).items()):
        if name in RECORDS and _odd(value):
            case.path_parameters[name] = RECORDS[name]
    return case


def _odd(value: Any) -> bool:
    try:
        return UUID(str(value)).int % 2 == 1
    except ValueError:
        return False
