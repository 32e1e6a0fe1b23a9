"""The OpenAPI document, told true (issue 26): litestar derives the paths, parameters,
bodies and success answers from the routes' signatures; this completes the document
with what a signature does not show, derived from each route where it can be.

* Every problem status a route can answer, each with the one ``Problem`` schema (RFC
  9457, as ``api.http.problems`` writes it) and why: 401 and 403 where a permission
  guard is; 404 where a record is named in the path; 400, 413 and 415 where a JSON
  body is; 409 and ``Idempotency-Key`` on commands (every write but those a route
  declares otherwise); 412 and ``If-Match`` on commands on a named record where the
  controller honours it (``HONOURS_IF_MATCH``); 400 where a page cursor is; 422 and
  503 everywhere (a parameter holding NUL; the database out of reach,
  ``min_position`` not reached in time). What only the route knows, it declares
  itself with ``documented`` (its ``opt``).
* The other media types a ``format`` parameter answers in (CSV, JSON Lines).
* A description saying who may call the route (its permission, and the roles that
  have it in ``ROLE_PERMISSIONS``), what it records and what it costs, after the
  route's docstring.
* Examples of request bodies (each body model's ``examples``), request and answer
  headers, and links from an answer that creates a record to the operations on it.

The completed document is what ``/schema/openapi.json`` serves (``ContractDocument``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute
from pydantic import BaseModel, ConfigDict, Field

from api.http.auth import Requires
from api.http.hygiene import MAX_JSON_DEPTH
from api.http.problems import PROBLEM
from api.http.support import READ_WAIT_SECONDS
from application.access import ROLE_PERMISSIONS, Permission

JSON = "application/json"
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
COMMAND_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

FORMAT_MEDIA_TYPES: Mapping[str, tuple[str, str]] = {
    "csv": ("text/csv", "CSV (UTF-8): a header line, then one record per item"),
    "jsonl": ("application/jsonl", "JSON Lines: one JSON object per line"),
}
"""The media type of each non-JSON ``format`` a read answers in."""


# ------------------------------------------------------------------- the schema


class FieldProblem(BaseModel):
    """One bad parameter or body field, named as the client sent it."""

    field: str = Field(description="The parameter or body field (`attributes.city`, `from`)")
    message: str
    source: Literal["body", "query", "path", "header", "cookie"] | None = None


class Problem(BaseModel):
    """An error (RFC 9457 problem details). Besides these members a problem may carry
    others that say more: `existing_client_id` (a phone or email another client
    holds), `current_version` (If-Match), `looked_up` (a lookup that found nothing)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="`urn:crm:problem:<code>` for the product's own problems, else `about:blank`",
        examples=["urn:crm:problem:not_found"],
    )
    title: str = Field(description="The status's phrase", examples=["Not Found"])
    status: int = Field(ge=400, le=599, description="The answer's status code")
    detail: str = Field(description="What went wrong, for a person to read")
    instance: str | None = Field(None, description="The path of the request")
    correlation_id: str | None = Field(
        None, description="The request's X-Correlation-ID: quote it when reporting a problem"
    )
    errors: list[FieldProblem] | None = Field(
        None, description="For 422s about input: each bad parameter or field"
    )


def problem_schemas() -> dict[str, Any]:
    """The components ``Problem`` and ``FieldProblem``."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {**definitions, "Problem": schema}


# ------------------------------------------------- what a route says of itself


@dataclass(frozen=True)
class Documented:
    """What the document cannot derive from a route: statuses only it answers (with
    why), whether it touches the database, whether a write is a command (recorded
    with an idempotency key, answered with a position), and the media types of a body
    it reads itself (not through a JSON ``data`` parameter)."""

    answers: Mapping[int, str] = field(default_factory=dict)
    touches_database: bool = True
    command: bool = True
    body_media_types: Sequence[str] = ()


def documented(
    answers: Mapping[int, str] | None = None,
    *,
    touches_database: bool = True,
    command: bool = True,
    body_media_types: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``opt`` of a route that answers more than its signature shows."""
    facts = Documented(
        dict(answers or {}), touches_database, command, tuple(sorted(body_media_types))
    )
    return {"contract": facts}


HONOURS_IF_MATCH: Mapping[str, Any] = {"contract_if_match": True}
"""The ``opt`` of a controller whose commands on a record named in the path take the
record's expected version from ``If-Match`` (412 when it moved on)."""


EXPORT_LIMIT = {
    429: "the caller's export limit is reached: CRM_EXPORT_RATE_PER_HOUR exports and reads of "
    "personal values in bulk per clock hour (`Retry-After`)"
}
"""What a route counted against the export limit answers besides."""
OWN_FIGURES = {
    404: "the owner, assignee or actor named is another manager: a manager reads their own "
    "figures only"
}
"""What a route of figures per person answers besides."""


PARAMETER_DESCRIPTIONS: Mapping[str, str] = {
    "client_id": "A client's id (the `id` its registration answered)",
    "deal_id": "A deal's id (the `id` its opening answered)",
    "task_id": "A follow-up's id (the `task_id` its scheduling answered)",
    "subscription_id": "A webhook subscription's id (the `id` its creation answered)",
    "stage": "Only clients in this lifecycle stage as of `as_of`",
    "owner_id": "A user id: only the records, or figures, of the clients that user owns now",
    "assignee_id": "A user id: only the follow-ups assigned to that user",
    "actor_id": "A user id: only what that user did",
    "last_contact_before": "Only clients whose last contact was before this instant",
    "last_contact_after": "Only clients whose last contact was at or after this instant",
    "format": "`json`: pages. Else a file of every matching item, which needs the `export` "
    "permission and is recorded",
    "phone": "A phone number, in any formatting (`+380 67 111 22 33`); a national number is "
    "read as CRM_DEFAULT_COUNTRY's. In a query string `+` is sent as `%2B`",
    "email": "An email address, in any case",
    "field": "Only changes of this field (`name`, `phones`, `attributes.city`, `stage`…)",
    "from": "Only what happened (business time) at or after this instant",
    "to": "Only what happened (business time) before this instant",
    "source": "Only events from this source",
    "opened_from": "Only deals opened at or after this instant",
    "opened_to": "Only deals opened before this instant",
    "limit": "The most items the page holds",
    "kind": "What the file holds (guessed from its headers when absent)",
    "dry_run": "Check every row and report, recording nothing",
    "skip_invalid": "Record the good rows and report the others (else all rows or none)",
    "country": "The ISO code of the country whose national phone numbers the file holds "
    "(default: CRM_DEFAULT_COUNTRY)",
    "date_format": "The order of day, month and year in the file's dates (guessed when absent)",
    "sheet": "The workbook's sheets to read (default: all)",
}
"""What each parameter name means wherever a route does not say it itself."""


# ------------------------------------------------------------ the derivation


@dataclass(frozen=True)
class _Route:
    path: str
    method: str
    handler: HTTPRouteHandler

    @property
    def permission(self) -> Permission | None:
        """The permission its guard requires, on the route or a layer above it."""
        layers = self.handler.ownership_layers
        guards = [g for layer in layers for g in layer.guards or () if isinstance(g, Requires)]
        return guards[0].permission if guards else None

    @property
    def names(self) -> list[str]:
        """The path's parameters: records named by id."""
        return PATH_PARAMETER.findall(self.path)

    @property
    def body_model(self) -> type[BaseModel] | None:
        data = self.handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            return None
        kinds = (data.annotation, *get_args(data.annotation))
        return next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)

    @property
    def command(self) -> bool:
        """A command: recorded with an idempotency key, answered with a position."""
        return self.method in COMMAND_METHODS and self.facts.command

    @property
    def honours_if_match(self) -> bool:
        """A command on a record named in the path that takes ``If-Match``."""
        return self.command and bool(self.names) and bool(self.opt.get("contract_if_match"))

    @property
    def opt(self) -> Mapping[str, Any]:
        return self.handler.opt or {}

    @property
    def facts(self) -> Documented:
        found = self.opt.get("contract")
        return found if isinstance(found, Documented) else Documented()


def _routes(app: Litestar) -> Iterator[_Route]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, (handler, _) in route.route_handler_map.items():
                yield _Route(route.path_format, str(method), handler)


def _noun(name: str) -> str:
    return name.removesuffix("_id").replace("_", "-")


def _answers(route: _Route, query: Mapping[str, Any]) -> dict[int, list[str]]:
    """Each problem status the route can answer, with why."""
    reasons: dict[int, list[str]] = {}

    def add(status: int, why: str) -> None:
        reasons.setdefault(status, []).append(why)

    if route.permission is not None:
        add(401, "no token, or one unknown or revoked (`WWW-Authenticate: Bearer`)")
        add(403, f"the caller's role lacks the `{route.permission}` permission, or one a variant")
    for name in route.names:
        add(404, f"no {_noun(name)} with that id (for a manager: none of theirs)")
    if route.body_model is not None:
        add(400, f"the body is not UTF-8 JSON, or nests more than {MAX_JSON_DEPTH} levels")
        add(413, "the body is over 1 MiB")
        add(415, "the body is not sent as JSON (`Content-Type: application/json`)")
        add(422, "a body field is invalid, or the change breaks a business rule (`errors`)")
    if route.command:
        add(400, "a malformed `Idempotency-Key`")
        add(409, "a concurrent change of the record, or a phone or email another client holds")
        add(422, "an `Idempotency-Key` already used with another body")
        if route.honours_if_match:
            add(400, 'a malformed `If-Match` (an ETag such as `"3"`)')
            add(412, "`If-Match` names a version the record no longer has (`current_version`)")
    if "cursor" in query:
        add(400, "a `cursor` that no page of this read made")
    add(422, "a parameter is invalid, or holds a character the store cannot keep (`errors`)")
    if route.facts.touches_database:
        add(503, _unavailable(route, query))
    for status, why in route.facts.answers.items():
        add(status, why)
    return reasons


def _unavailable(route: _Route, query: Mapping[str, Any]) -> str:
    why = "the database cannot be reached just now (`Retry-After`)"
    if "min_position" in query:
        why += f", or the read models did not reach `min_position` within {READ_WAIT_SECONDS:g} s"
    if route.command:
        why += "; the write may or may not be recorded: retry with the same `Idempotency-Key`"
    return why


def _who(route: _Route) -> str:
    if route.permission is None:
        return "**Who**: anyone; no token needed."
    roles = [role for role, granted in ROLE_PERMISSIONS.items() if route.permission in granted]
    text = f"**Who**: roles with the `{route.permission}` permission ({', '.join(roles)})"
    if route.permission in (Permission.READ_MODELS, Permission.WRITE_OWN):
        text += "; a manager acts on and reads their own records and unassigned leads only"
    return text + "."


def _costs(route: _Route, answers: Mapping[int, list[str]], query: Mapping[str, Any]) -> list[str]:
    notes = []
    if route.command:
        notes.append(
            "**Records** the command's events, attributed to the caller (source `api`, the "
            "request's correlation id), and answers with the `position` of the last: pass "
            "it as `min_position` to read your own write. A retry with the same "
            "`Idempotency-Key` and body answers the same and records nothing."
        )
    if "min_position" in query:
        notes.append(
            f"**Waits** up to {READ_WAIT_SECONDS:g} s for the read models to reach "
            "`min_position`, when given."
        )
    if 429 in answers:
        notes.append(
            "**Counts** against the caller's export limit when it sends personal values in "
            "bulk or a file, and is then recorded (`DataExported`)."
        )
    return notes


def _header_parameter(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


PARAMETERS = {
    "CorrelationId": _header_parameter(
        "X-Correlation-ID",
        "Ties the request to the events it records and its log lines; echoed on the answer, "
        "made when absent or not 1 to 128 of `A-Za-z0-9._:/-`",
    ),
    "IdempotencyKey": _header_parameter(
        "Idempotency-Key",
        "A retry with the same key and body answers as the first time did and records "
        "nothing; the same key with another body is a 422",
        pattern=r"^[\x21-\x7e]{1,200}$",
    ),
    "IfMatch": _header_parameter(
        "If-Match",
        'The version the change is meant for (the record\'s `ETag`, e.g. `"3"`); `*` or '
        "absent: whatever the version",
        pattern=r'^((W/)?"[0-9]{1,18}"|\*)$',
    ),
}
"""Request headers, in ``components/parameters``."""
HEADERS = {
    "CorrelationId": {
        "description": "The request's correlation id (X-Correlation-ID)",
        "schema": {"type": "string"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "ETag": {
        "description": 'The record\'s version, for `If-Match` (e.g. `"3"`)',
        "schema": {"type": "string"},
    },
}
"""Answer headers, in ``components/headers``."""


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _complete(operation: dict[str, Any], route: _Route, schemas: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    for parameter in parameters:
        if not parameter.get("description") and parameter["name"] in PARAMETER_DESCRIPTIONS:
            parameter["description"] = PARAMETER_DESCRIPTIONS[parameter["name"]]
    query = {p["name"]: p for p in parameters if p.get("in") == "query"}
    answers = _answers(route, query)
    responses = operation.setdefault("responses", {})
    for code in [code for code in responses if int(code) >= 400]:
        del responses[code]  # litestar's own 400, whose body is not what is sent
    for status, why in sorted(answers.items()):
        text = "; ".join(dict.fromkeys(why))
        headers = {"X-Correlation-ID": _ref("headers", "CorrelationId")}
        if status in (429, 503):
            headers["Retry-After"] = _ref("headers", "RetryAfter")
        responses[str(status)] = {
            "description": text[0].upper() + text[1:] + ".",
            "headers": headers,
            "content": {PROBLEM: {"schema": _ref("schemas", "Problem")}},
        }
    for code, success in responses.items():
        if int(code) < 400:
            headers = success.setdefault("headers", {})
            headers["X-Correlation-ID"] = _ref("headers", "CorrelationId")
            if route.command:
                headers["ETag"] = _ref("headers", "ETag")
            _add_formats(success, query)
    parameters.append(_ref("parameters", "CorrelationId"))
    if route.command:
        parameters.append(_ref("parameters", "IdempotencyKey"))
        if route.honours_if_match:
            parameters.append(_ref("parameters", "IfMatch"))
    _add_body(operation, route, schemas)
    described = [operation.get("description") or "", _who(route), *_costs(route, answers, query)]
    operation["description"] = "\n\n".join(part for part in described if part)


def _add_formats(success: dict[str, Any], query: Mapping[str, Any]) -> None:
    formats = query.get("format", {}).get("schema", {}).get("enum", [])
    content = success.setdefault("content", {})
    for name in formats:
        if name in FORMAT_MEDIA_TYPES:
            media, description = FORMAT_MEDIA_TYPES[name]
            content[media] = {"schema": {"type": "string", "description": description}}


def _add_body(operation: dict[str, Any], route: _Route, schemas: dict[str, Any]) -> None:
    model = route.body_model
    if model is not None and "requestBody" in operation:
        schema = operation["requestBody"]["content"].get(JSON, {}).get("schema", {})
        component = schemas.get(component_of(schema))
        if component is not None and model.model_config.get("extra") == "forbid":
            component["additionalProperties"] = False  # a member it does not know is a 422
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        media = operation["requestBody"]["content"].get(JSON)
        if media is not None and isinstance(examples, list):
            media["examples"] = {
                f"example{n}": {"value": example} for n, example in enumerate(examples, 1)
            }
    if route.facts.body_media_types:
        operation["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in route.facts.body_media_types
            },
        }


def _link(paths: dict[str, Any], schemas: Mapping[str, Any]) -> None:
    """Links from each answer that creates a record (a 201 with its id) to what can be
    done with it, named by the target's operation id (schemathesis follows them):

    * the operations on the record: the paths under the creating path with one more
      parameter, which takes the new id (the answer's member of that name when it has
      one, as ``task_id``, else ``id``); the parameters both paths have stay the same;
    * the commands whose body names such a record (``client_id`` of a new deal)."""
    for path, item in paths.items():
        for operation in item.values():
            created = operation.get("responses", {}).get("201")
            if created is None:
                continue
            members = _properties(created.get("content", {}).get(JSON, {}), schemas)
            own = set(PATH_PARAMETER.findall(path))
            links: dict[str, Any] = {}
            named: set[str] = set()
            for target_path, target in paths.items():
                new = set(PATH_PARAMETER.findall(target_path)) - own
                if not target_path.startswith(path + "/{") or len(new) != 1:
                    continue
                (name,) = new
                named.add(name)
                values = {p: f"$request.path.{p}" for p in own}
                values[name] = f"$response.body#/{name if name in members else 'id'}"
                for op in target.values():
                    links[op["operationId"]] = {
                        "operationId": op["operationId"],
                        "parameters": values,
                    }
            for target in paths.values():
                for op in target.values():
                    body = op.get("requestBody", {}).get("content", {}).get(JSON, {})
                    for name in named & _properties(body, schemas):
                        links[op["operationId"]] = {
                            "operationId": op["operationId"],
                            "requestBody": {name: "$response.body#/id"},
                        }
            if links:
                created["links"] = links


def component_of(schema: Mapping[str, Any]) -> str:
    """The component a schema names, itself or as the one choice besides ``null``."""
    for choice in (schema, *schema.get("oneOf", ()), *schema.get("anyOf", ())):
        if "$ref" in choice:
            return str(choice["$ref"]).rpartition("/")[2]
    return ""


def _properties(media: Mapping[str, Any], schemas: Mapping[str, Any]) -> set[str]:
    """The members of a JSON media type's schema (a component's, when it names one)."""
    schema = media.get("schema", {})
    schema = schemas.get(component_of(schema), schema)
    return set(schema.get("properties", {}))


def complete(document: Mapping[str, Any], app: Litestar) -> dict[str, Any]:
    """The OpenAPI ``document`` litestar made for ``app``, completed (module doc)."""
    completed = copy.deepcopy(dict(document))
    components = completed.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(problem_schemas())
    components.setdefault("parameters", {}).update(copy.deepcopy(PARAMETERS))
    components.setdefault("headers", {}).update(copy.deepcopy(HEADERS))
    paths = completed.get("paths", {})
    for route in _routes(app):
        operation = paths.get(route.path, {}).get(route.method.lower())
        if operation is not None:  # else not in the document (schema pages, HEAD, OPTIONS)
            _complete(operation, route, schemas)
    _link(paths, schemas)
    return completed


class ContractDocument(JsonRenderPlugin):
    """Serves ``/schema/openapi.json`` completed (``complete``), made once per app; the
    interactive pages read it from there."""

    def __init__(self) -> None:
        super().__init__()
        self._made: tuple[int, bytes] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._made is None or self._made[0] != id(openapi_schema):
            document = complete(openapi_schema, request.app)
            self._made = (id(openapi_schema), self.render_json(request, document))
        return self._made[1]
