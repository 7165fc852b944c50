"""Settings for every test: hypothesis never fails a test because the machine is busy.

Its ``too_slow`` health check and its per-example deadline measure the speed of generating and
running examples; on 2 cores shared with other work both fail tests whose assertions held. Tests
that give ``suppress_health_check`` themselves list ``too_slow`` too (an explicit list replaces
this one). Speed is measured by ``make bench``, never by a test.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("podpreset", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("podpreset")
