"""The suite's tiers (tests/conftest.py): each test is fast or e2e, by what it
uses, so that `pytest -m fast` runs no server, browser, VM or console-script process."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


def test_a_fast_test_cannot_start_the_console_script() -> None:
    with pytest.raises(pytest.fail.Exception, match="starts the console script: mark it e2e, or use invoke_cli"):
        run_cli("--help")


def test_this_test_is_fast(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("fast") and not request.node.get_closest_marker("e2e")


@pytest.mark.usefixtures("prefect_api")
def test_a_test_on_the_prefect_server_is_e2e(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("e2e") and not request.node.get_closest_marker("fast")


@pytest.mark.e2e
def test_a_marked_test_may_start_the_console_script() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "sync" in result.stdout


def test_the_real_servers_tests_are_one_group_for_xdist(request: pytest.FixtureRequest) -> None:
    """`make test`'s workers share one real `prefect server start`: pytest-xdist's
    loadgroup must see the group conftest.py gives its tests. With pytest 9.2 it
    did not (pytest-dev/pytest-xdist#1386): they spread, and each worker started a server."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not in a pytest-xdist worker with --dist loadgroup (make test)")
    grouped = [item.nodeid for item in request.session.items if "prefect_server" in getattr(item, "fixturenames", ())]
    if not grouped:
        pytest.skip("no test of the real server selected")
    assert all(nodeid.endswith("@prefect-server") for nodeid in grouped), grouped
