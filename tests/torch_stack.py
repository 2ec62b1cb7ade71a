"""The one way a test skips for a missing torch stack, and the CI rule that makes such a skip a failure.

Tests that need torch or transformers (the ``capture`` extra) get them with
``torch_stack.importorskip(name)`` instead of ``pytest.importorskip``: without the module the test, or the
whole test module when called at module level, is skipped as usual. But when the environment variable
``CI`` is set (``.ci/run`` sets ``CI=true``) and torch is installed, any such skip turns the session into a
failure that lists the skipped tests, so a broken install cannot pass CI by silently skipping the
real-model tests. The skip is recognised by its exception type (:class:`TorchStackMissing`) or, for a
module-level skip, by having gone through :func:`importorskip` during that module's collection; never by
the wording of a skip reason.

tests/conftest.py loads the hooks below; ``pytest -p torch_stack`` (with tests/ on ``sys.path``) loads them
elsewhere. tests/test_torch_free.py checks that they work.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest

CI_OFF = ("", "0", "false", "no", "off")


class TorchStackMissing(pytest.skip.Exception):
    """A skip because part of the torch stack could not be imported."""


_raised: list[str] = []  # every skip importorskip raised in this process, in order
_SKIPPED = pytest.StashKey[list[tuple[str, str]]]()  # (node id, reason) of the torch-stack skips
_FAILING = pytest.StashKey[bool]()


def importorskip(name: str) -> ModuleType:
    """``import name``, or skip the calling test (or test module) with :class:`TorchStackMissing`."""
    __tracebackhide__ = True  # the skip is reported at the caller's line
    try:
        return importlib.import_module(name)
    except ImportError as error:
        reason = f"needs {name}, not importable here ({error}); `make test` installs it"
        _raised.append(reason)
        raise TorchStackMissing(reason, allow_module_level=True) from None


def ci_enabled() -> bool:
    return os.environ.get("CI", "").strip().lower() not in CI_OFF


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def _record(config: pytest.Config, nodeid: str, reason: str) -> None:
    config.stash.setdefault(_SKIPPED, []).append((nodeid, reason))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    raised_before = len(_raised)
    report = yield
    if report.skipped and len(_raised) > raised_before:  # a module-level importorskip
        _record(collector.config, report.nodeid or str(collector.path), _raised[-1])
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and call.excinfo is not None and isinstance(call.excinfo.value, TorchStackMissing):
        _record(item.config, report.nodeid, str(call.excinfo.value.msg))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    failing = bool(session.config.stash.get(_SKIPPED, [])) and ci_enabled() and torch_installed()
    session.config.stash[_FAILING] = failing
    if failing and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not config.stash.get(_FAILING, False):
        return
    skipped = config.stash[_SKIPPED]
    terminalreporter.section("torch-dependent tests skipped under CI", sep="=", red=True, bold=True)
    terminalreporter.line(f"CI={os.environ.get('CI')!r} and torch is installed, yet {len(skipped)} test(s) or test "
                          "module(s) skipped for a missing part of the torch stack; this fails the run "
                          "(tests/torch_stack.py):", red=True)
    for nodeid, reason in skipped:
        terminalreporter.line(f"  {nodeid}: {reason}")
