"""What schemathesis needs to know of Ferry's REST API beyond the spec (.ci/contract loads it).

Each hook stands for a rule JSON Schema cannot state, so that generated requests the spec calls
valid are valid; everything the spec can state, it states.
"""

import json
import pathlib
import re
import uuid

import jsonschema
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.openapi.checks import RejectedPositiveData

# The spec's rule of the header (see `shared_parameter_rules` in crates/api/src/http/mod.rs).
IDEMPOTENCY_KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")
SPEC = json.loads((pathlib.Path(__file__).parent.parent / "openapi" / "ferry.v1.json").read_text())


def _positive(case):
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    # An Idempotency-Key names one request: the server refuses it with another body (422, as the
    # IETF idempotency-key draft asks). Generation reuses keys across bodies, so a well-formed key
    # is replaced by a fresh one.
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and len(key) <= 255 and IDEMPOTENCY_KEY.match(key):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    # A page cursor is opaque: only the `next` value of an earlier page is one, and the server
    # answers a made-up one with 400. Generated cursors are left out.
    if case.query and "cursor" in case.query:
        del case.query["cursor"]


def _body_is_valid(case):
    """Whether the body is valid by the spec; None when the operation takes no JSON body."""
    operation = SPEC["paths"][case.operation.path][case.method.lower()]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is None or not isinstance(case.body, dict):
        return None
    schema = dict(body["schema"], components=SPEC["components"])
    return jsonschema.Draft202012Validator(schema).is_valid(case.body)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """The generator mislabels some `oneOf` bodies: the coverage phase mixes the variants'
    properties into a body it calls valid, and a mutation of one variant can produce another
    variant, which it calls invalid. Where the spec itself says the opposite of the label, the
    server agreed with the spec, and there is no disagreement to report.

    `jsonschema` does not check formats such as int64's range, so a body it calls valid may
    still break one; the server refuses those itself (integers past 2^53 - 1 written as floats
    are not read as integers)."""
    if isinstance(failure, RejectedPositiveData):
        return _body_is_valid(case) is not False
    if isinstance(failure, AcceptedNegativeData) and case.meta is not None:
        negative = [loc for loc, info in case.meta.components.items() if info.mode.is_negative]
        if [loc.name for loc in negative] == ["BODY"]:
            return _body_is_valid(case) is not True
    return True
