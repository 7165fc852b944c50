"""What the tests share: one AdmissionReview builder, one preset builder, one CLI runner.

``tests/`` is on ``sys.path`` (pytest's ``pythonpath``), so a test imports ``support.reviews``,
``support.presets`` and ``support.cli`` wherever it lives.
"""
