"""The floor of the end-to-end benchmark: ``podpreset serve``'s exact stack answering every review
with one fixed answer, captured beforehand from podpreset itself, without any engine work.

``python -m bench.fixedpatch --answer FILE --tls-cert F --tls-key F --bind HOST:PORT`` takes the
flags of ``podpreset serve`` and runs through the same ``serve_app``. ``FILE`` holds the
AdmissionReview podpreset answered for the benchmark's pod; each request gets those bytes with
its own uid. The API server then applies (and validates) exactly podpreset's patch, so the
difference between this server and podpreset is podpreset's own work and nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from presets.admission import decode_json, encode_json
from webhook.server.serve import add_serve_arguments, serve_app
from webhook.settings import Settings, SettingsError, settings_from_args

JSON = "application/json"
UID_MARK = "00000000-fixed-patch-uid-0000000000"


def answer_template(answer: dict[str, Any]) -> tuple[bytes, bytes]:
    """The answer's bytes before and after its uid."""
    response = dict(answer["response"])
    response["uid"] = UID_MARK
    encoded = encode_json({**answer, "response": response})
    before, _, after = encoded.partition(UID_MARK.encode())
    return before, after


def create_fixed_patch_app(settings: Settings, answer: dict[str, Any]) -> Flask:
    """A Flask app with ``/mutate`` (parse, answer the fixed patch with the request's uid) and ``/readyz``."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    before, after = answer_template(answer)

    @app.post("/mutate")
    def mutate() -> Response:
        if request.mimetype != JSON:
            return Response(b'{"error":"content type"}', status=415, mimetype=JSON)
        review: Any = decode_json(request.get_data(cache=False))
        uid = str(review["request"]["uid"]).encode()
        return Response(before + uid + after, status=200, mimetype=JSON)

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status":"ok"}', status=200, mimetype=JSON)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fixedpatch", description=__doc__)
    parser.add_argument("--answer", required=True, help="the AdmissionReview (JSON) to answer with")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"bench.fixedpatch: {exc}", file=sys.stderr)
        return 2
    answer = decode_json(Path(args.answer).read_bytes())
    return serve_app(lambda: create_fixed_patch_app(settings, answer), settings)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
