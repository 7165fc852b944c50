"""The benchmark behind ``make bench``: how much podpreset adds to pod creation.

``scenarios`` generates the presets and reviews, ``noop`` is the floor (the same gunicorn, Flask
and TLS stack answering without presets), ``inprocess`` times the engine and preset loading,
``run`` starts the servers and drives them with wrk, ``report`` prints the table and writes
``build/bench.json``. Nothing here is imported by the product.
"""
