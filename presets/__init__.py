"""The podpreset engine: pure, synchronous, and free of I/O.

Everything in this package works on plain JSON-shaped values (dicts, lists, strings) exactly as
they arrive from the Kubernetes API, and returns plain values. It cannot do any I/O: no sockets,
no files, no Flask, no Kubernetes client, no threads, no logging configuration, no global state.
The outside world (HTTP, the watch of PodPreset objects, YAML files on disk, metrics, events)
lives in the ``webhook`` package, which calls into this one. ``tests/unit/test_purity.py``
enforces the rule by parsing every module here.

The pipeline for one pod, a module per step: ``selection`` (which presets, in which order, and
the ``PresetIndex`` snapshot that narrows them) → ``plan`` (the walk, over the field table and
merge rules of ``merge``, with the defaulting of ``defaults``) → ``engine`` (decide and render,
and ``apply_presets``, the whole). ``model`` parses and validates presets; ``admission`` is the
AdmissionReview in and out; ``rollout`` fingerprints a workload's pod template with the engine, to
decide whether a preset change rolls it.
"""
