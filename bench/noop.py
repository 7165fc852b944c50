"""The floor: ``podpreset serve``'s exact gunicorn, TLS and Flask stack with a handler that only
parses the AdmissionReview and answers ``allowed`` with no patch.

``python -m bench.noop --tls-cert F --tls-key F --bind HOST:PORT`` takes the same flags as
``podpreset serve`` and runs through the same ``serve_app``, so the only difference measured
against ``typical`` is the admission itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flask import Flask, Response, request

from presets.admission import decode_json, encode_json
from webhook.server.serve import add_serve_arguments, serve_app
from webhook.settings import Settings, SettingsError, settings_from_args

JSON = "application/json"


def create_noop_app(settings: Settings) -> Flask:
    """A Flask app with ``/mutate`` (parse, echo the uid, allow) and ``/readyz``."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    @app.post("/mutate")
    def mutate() -> Response:
        if request.mimetype != JSON:
            return Response(b'{"error":"content type"}', status=415, mimetype=JSON)
        review: Any = decode_json(request.get_data(cache=False))
        uid = review["request"]["uid"]
        answer = {
            "apiVersion": review["apiVersion"],
            "kind": review["kind"],
            "response": {"uid": uid, "allowed": True},
        }
        return Response(encode_json(answer), status=200, mimetype=JSON)

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status":"ok"}', status=200, mimetype=JSON)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noop", description=__doc__)
    add_serve_arguments(parser)
    try:
        settings = settings_from_args(parser.parse_args(argv))
    except SettingsError as exc:
        print(f"bench.noop: {exc}", file=sys.stderr)
        return 2
    return serve_app(lambda: create_noop_app(settings), settings)


if __name__ == "__main__":
    sys.exit(main())
