"""Every test gets a time limit (pytest-timeout): a hang in a child process, the
browser or an inference engine then fails that test instead of stalling the suite."""
import pytest

TEST_TIMEOUT_S = 600   # the slowest test takes well under a minute here


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))
