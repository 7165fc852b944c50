"""serve loads the preset files once before the fork; each worker's source starts from that load."""

from pathlib import Path

from webhook.sources.files import FileSource, preload

PRESET = """apiVersion: podpreset.dev/v1
kind: PodPreset
metadata: {name: NAME}
spec:
  env: [{name: A, value: "1"}]
"""


def test_a_preloaded_source_publishes_the_preload_without_reading_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(PRESET.replace("NAME", "first"))
    preloaded, result = preload([str(tmp_path)])
    assert [p.name for p in result.presets] == ["first"] and not result.problems
    (tmp_path / "a.yaml").write_text("not: [valid")  # what a second read would see
    source = FileSource([str(tmp_path)], interval=3600, preloaded=preloaded)
    source.start()
    try:
        snapshot = source.snapshot()
        assert snapshot.synced and not snapshot.problems
        assert [p.name for p in snapshot.index.for_namespace("default")] == ["first"]
        assert source.reload().problems  # the edit is seen by the next (polled) load
        assert [p.name for p in source.snapshot().index.for_namespace("default")] == ["first"]
    finally:
        source.stop()
