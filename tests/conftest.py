"""Shared test settings."""

import os

import pytest
from hypothesis import HealthCheck, settings

# The real PostgreSQL fixtures (pg_cluster, fresh_db, migrated_db), for every test package.
pytest_plugins = ["tests.pgfixtures"]

# CI gets more examples; both are deterministic per run of the database-less profile.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the whole session (starting Ray costs seconds).

    Two CPUs, no dashboard, a modest object store and token auth off: a private cluster
    that exists only for this test run and is shut down after it.
    """
    import ray

    from actors.runtime import ensure_ray

    started = not ray.is_initialized()
    ensure_ray(num_cpus=2, object_store_memory=256 * 1024 * 1024)
    yield ray
    if started:
        ray.shutdown()
