"""keepvip.operator.kube.api_unavailable: which errors of the operator's own passes are the API server away.

Why: the maintenance and LoadBalancer passes retry on their next round whatever fails;
an API server that is restarting (no connection, 5xx, its CRDs' paths answered
``404 page not found``) deserves one warning line, while anything else — a missing object,
a refused permission, a bug — keeps its traceback.
"""

from __future__ import annotations

import urllib3
from kubernetes.client.exceptions import ApiException

from keepvip.operator.kube import api_unavailable


def answered(status: int, reason: str, body: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = body
    return error


def test_a_path_not_served_yet_is_the_api_server_away() -> None:
    reason = api_unavailable(answered(404, "Not Found", "404 page not found\n"))
    assert reason is not None
    assert "404 page not found" in reason


def test_a_missing_object_is_not() -> None:
    status = '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}'
    assert api_unavailable(answered(404, "Not Found", status)) is None


def test_starting_overloaded_and_unreachable_servers_are_away_refusals_and_bugs_are_not() -> None:
    assert api_unavailable(answered(503, "Service Unavailable", "server is starting")) is not None
    assert api_unavailable(answered(429, "Too Many Requests", "")) is not None
    assert api_unavailable(urllib3.exceptions.MaxRetryError(None, "/api", "refused")) is not None  # type: ignore[arg-type]
    assert api_unavailable(ConnectionRefusedError()) is not None
    assert api_unavailable(answered(403, "Forbidden", "forbidden")) is None
    assert api_unavailable(answered(422, "Unprocessable Entity", "")) is None
    assert api_unavailable(KeyError("spec")) is None
