"""Fuzzing ``/mutate`` of a real gunicorn with broken AdmissionReviews.

Every answer is a 200 AdmissionReview or a 4xx naming the problem in JSON; never a 5xx, and no
worker ever dies (the log shows exactly the two workers booted at start).
"""

from __future__ import annotations

import base64
import http.client
import json

from hostile import FUZZ, deep_text, encode, review_of, reviews
from hypothesis import example, given
from hypothesis import strategies as st
from serverkit import GunicornServer, send

JSON = {"Content-Type": "application/json"}


def _post(server: GunicornServer, body: bytes) -> tuple[int, bytes]:
    conn = server.connection(timeout=30)
    try:
        status, _, data = send(conn, "POST", "/mutate", body, JSON)
        return status, data
    finally:
        conn.close()


def check_answer(status: int, data: bytes) -> None:
    assert status < 500, (status, data[:500])
    answer = json.loads(data)
    if status == 200:
        response = answer["response"]
        assert response["allowed"] is True and isinstance(response["uid"], str)
        if "patch" in response:
            assert isinstance(json.loads(base64.b64decode(response["patch"])), list)
    else:
        assert status in (400, 413, 415), (status, answer)
        assert answer["code"] == status and isinstance(answer["error"], str) and answer["error"]


@FUZZ
@given(review=reviews, ensure_ascii=st.booleans())
@example(review=review_of(), ensure_ascii=True)
def test_a_broken_review_is_answered_with_a_200_or_a_4xx_naming_the_problem(
    fuzz_server: GunicornServer, review: object, ensure_ascii: bool
) -> None:
    status, data = _post(fuzz_server, encode(review, ensure_ascii=ensure_ascii))
    check_answer(status, data)


@FUZZ
@given(deep=deep_text())
@example(deep=(101, b"[" * 101 + b"]" * 101))
@example(deep=(100, b"[" * 100 + b"]" * 100))
def test_a_review_nested_deeper_than_the_bound_is_a_400_naming_it(
    fuzz_server: GunicornServer, deep: tuple[int, bytes]
) -> None:
    depth, body = deep
    status, data = _post(fuzz_server, body)
    check_answer(status, data)
    if depth > 100:
        assert (status, json.loads(data)["error"]) == (400, "body: JSON nests deeper than 100 levels")
    else:
        assert status == 200 or json.loads(data)["error"] != "body: JSON nests deeper than 100 levels"


@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_are_answered_with_a_4xx(fuzz_server: GunicornServer, body: bytes) -> None:
    status, data = _post(fuzz_server, body)
    check_answer(status, data)
    assert status != 200 or json.loads(data)["kind"] == "AdmissionReview"


def test_no_worker_died_while_fuzzing(fuzz_server: GunicornServer) -> None:
    # Runs after the fuzz tests of this module (file order): a dead worker is replaced and logged.
    log = fuzz_server.log()
    assert log.count("Booting worker with pid") == 2, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    conn: http.client.HTTPSConnection = fuzz_server.connection()
    conn.close()
