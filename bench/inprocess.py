"""In-process measurements: the review function per call, and loading 10,000 presets.

``time_engine`` times ``presets.admission.admit`` on an already decoded review (the function
alone) and the server's whole request work (decode the body, admit, encode the answer), with
``timeit``: each repeat runs enough calls to last ``min_seconds``, and the median repeat counts.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from bench.scenarios import Scenario
from presets.admission import PresetIndex, admit, decode_json, encode_review
from presets.model import parse_preset
from webhook.sources.documents import load_presets


def index_of(scenario: Scenario) -> PresetIndex:
    """The scenario's presets, validated exactly as the file source does, without YAML."""
    presets = [
        parse_preset(doc, source=f"bench:{scenario.name}", document=n, default_namespace="default")
        for n, doc in enumerate(scenario.presets, start=1)
    ]
    return PresetIndex.build(presets)


def per_call_us(call: Callable[[], object], *, repeats: int, min_seconds: float) -> float:
    """The median over ``repeats`` of the mean time of one call, in microseconds."""
    timer = timeit.Timer(call)
    number, elapsed = timer.autorange()  # at least 0.2 s
    number = max(1, round(number * min_seconds / elapsed))
    times = timer.repeat(repeat=repeats, number=number)
    return statistics.median(times) / number * 1e6


def time_engine(scenario: Scenario, *, repeats: int, min_seconds: float) -> dict[str, float]:
    """``us_per_call`` for ``admit`` alone and ``us_per_call_json`` with decoding and encoding."""
    index = index_of(scenario)
    review = scenario.review
    body = scenario.body()

    namespaces = scenario.namespaces

    def review_only() -> object:
        return admit(review, index, namespaces=namespaces)

    def whole_request() -> object:
        return encode_review(admit(decode_json(body), index, namespaces=namespaces).response)

    return {
        "us_per_call": round(per_call_us(review_only, repeats=repeats, min_seconds=min_seconds), 1),
        "us_per_call_json": round(per_call_us(whole_request, repeats=repeats, min_seconds=min_seconds), 1),
        "presets": len(index),
    }


def time_load(directory: Path, *, repeats: int) -> tuple[float, int]:
    """Median seconds to read, validate and index every preset file of ``directory``."""
    times: list[float] = []
    count = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = load_presets([str(directory)])
        count = len(PresetIndex.build(result.presets))
        times.append(time.perf_counter() - started)
        if result.problems:
            raise RuntimeError(f"{directory}: generated presets are invalid: {result.problems[0]}")
    return statistics.median(times), count
