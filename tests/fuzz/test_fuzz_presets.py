"""Fuzzing preset documents through every reader: the watch's parser, validate, the file source.

Whatever the document, the answer is a preset or problems that name where and what; never an
exception. The watch's objects go through ``parse_object``, the very function the watch calls.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import yaml
from hostile import FUZZ, LEGACY_PRESET, PRESET, Pairs, encode, preset_documents
from hypothesis import example, given
from hypothesis import strategies as st

from presets.model import PodPreset
from webhook.cli import run_validate
from webhook.sources.documents import SourceError, load_presets, parse_documents
from webhook.sources.files import FileSource
from webhook.sources.kube import KubeSource, parse_object


@FUZZ
@given(obj=preset_documents)
@example(obj=PRESET)
@example(obj={"metadata": ["not", "a", "mapping"], "spec": {}})  # found: object_key crashed on it
@example(obj={"metadata": {"name": ["x"], "namespace": {"a": 1}}})
def test_the_watch_parses_any_object_into_a_preset_or_problems_naming_it(obj: object) -> None:
    if isinstance(obj, Pairs):
        obj = dict(obj)  # the API server's JSON decoder keeps the last of duplicate keys
    preset, problems = parse_object(obj)  # type: ignore[arg-type]
    assert (preset is None) != (problems == ())
    if preset is not None:
        assert isinstance(preset, PodPreset)
    for line in problems:
        assert line.startswith(("podpreset ", "clusterpodpreset ")) and ": " in line, line


@FUZZ
@given(obj=preset_documents, kind=st.sampled_from(["ADDED", "MODIFIED", "DELETED"]))
@example(obj=True, kind="ADDED")  # found by this test: the watch crashed on an object that is no mapping
@example(obj={"metadata": "x"}, kind="MODIFIED")
def test_a_watch_event_of_any_object_updates_the_snapshot_or_reports_it(obj: object, kind: str) -> None:
    source = KubeSource(None)
    if isinstance(obj, Pairs):
        obj = dict(obj)
    source.presets.handle({"type": kind, "object": obj})
    snapshot = source.snapshot()
    assert len(snapshot.index) <= 1
    assert all(isinstance(p, str) and p for p in snapshot.problems)


def _write(directory: Path, obj: object, form: str) -> Path:
    if form == "json":
        path = directory / "presets.json"
        path.write_bytes(encode(obj, ensure_ascii=True))
    else:
        path = directory / "presets.yaml"
        plain = json.loads(encode(obj, ensure_ascii=True))  # YAML cannot write duplicate keys either
        path.write_text(yaml.safe_dump(plain, allow_unicode=False), encoding="utf-8")
    return path


@FUZZ
@given(obj=preset_documents, form=st.sampled_from(["json", "yaml"]))
@example(obj=LEGACY_PRESET, form="yaml")
def test_validate_and_the_file_source_report_any_document_by_file_never_raise(obj: object, form: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), obj, form)
        out, err = io.StringIO(), io.StringIO()
        status = run_validate([tmp], out, err)
        assert status in (0, 1)
        if status == 1:
            lines = out.getvalue().splitlines()
            assert lines and all(line.startswith(f"{path}") or line.startswith(tmp) for line in lines), lines
        try:
            result = load_presets([tmp])
        except SourceError as exc:
            assert str(exc).startswith(str(path)), exc
        else:
            assert all(p.source == str(path) for p in result.problems)
            assert (status == 0) == (not result.problems and len(result.presets) > 0)

        source = FileSource([tmp], interval=3600)
        snapshot = source.reload()
        assert not any("unexpectedly" in p for p in snapshot.problems), snapshot.problems
        assert snapshot.synced == (status == 0 or (status == 1 and not snapshot.problems))


@FUZZ
@given(
    text=st.text(max_size=300)
    | st.sampled_from(
        ["- &a [*a]", "a: !!python/object:os.system x", "%YAML 9.9\n---", "[", "{a: 1, a: 2}", "? [a]\n: b"]
    )
)
def test_any_text_is_parsed_into_documents_or_refused_with_the_file_named(text: str) -> None:
    try:
        parse_documents(text, "fuzz.yaml")
    except SourceError as exc:
        assert str(exc).startswith("fuzz.yaml: ")


def test_a_volume_whose_name_is_a_list_is_a_problem_not_a_crash() -> None:
    # Found by the fuzzer: an unhashable volume name made parse_preset raise TypeError, which
    # validate printed as a traceback and the file source as an unexpected failure.
    obj = {**PRESET, "spec": {**PRESET["spec"], "volumes": [{"name": ["x"], "emptyDir": {}}]}}
    preset, problems = parse_object(obj)
    assert preset is None
    assert "podpreset default/web-settings: spec.volumes[0].name: required: a non-empty string" in problems


def test_a_huge_value_is_quoted_in_a_problem_only_in_part() -> None:
    # Found by the fuzzer: a 300,000-character apiVersion was echoed whole into each problem line
    # (100,000 here: a larger object is refused by its size before anything is quoted).
    preset, problems = parse_object({**PRESET, "apiVersion": "x" * 100_000})
    assert preset is None
    (line,) = problems
    assert len(line) < 400 and line.endswith("more characters)"), line


def test_an_envfrom_name_that_is_a_mapping_is_a_problem_not_a_crash() -> None:
    # Found by the fuzzer (make fuzz): an unhashable configMapRef name raised TypeError.
    env_from = [{"configMapRef": {"name": {}}, "prefix": "WEB_"}]
    preset, problems = parse_object({**PRESET, "spec": {**PRESET["spec"], "envFrom": env_from}})
    assert preset is None
    assert any(
        line.startswith("podpreset default/web-settings: spec.envFrom[0].configMapRef") for line in problems
    )


def test_a_key_holding_a_newline_is_reported_on_one_line() -> None:
    # Found by the fuzzer (make fuzz): an unknown spec key "\n" split validate's problem in two.
    preset, problems = parse_object({**PRESET, "spec": {**PRESET["spec"], "\n": 1}})
    assert preset is None
    assert all("\n" not in line for line in problems)
    assert any("spec.\\n: unknown field" in line for line in problems), problems
