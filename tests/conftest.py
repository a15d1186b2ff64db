"""Settings for the whole suite.

Hypothesis's per-example deadline (200 ms by default) is a timing check: on a
loaded machine (CI, or two suites at once on two cores) a correct example can
take longer, and the property test fails with DeadlineExceeded. Our properties
are about results, not speed (speed is measured by the benchmarks), so the
deadline is off everywhere; the number of examples stays each test's own.
"""

from hypothesis import settings

settings.register_profile("squall", deadline=None)
settings.load_profile("squall")
