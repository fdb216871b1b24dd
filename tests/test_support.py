"""The suite's own machinery: the pre-flight (pgTAP and plpgsql_check before the first
test) and the rule that a skip fails in CI."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.support import preflight
from tests.support.preflight import HostFacts, Install, Ready, ServerFacts, Stop, decide
from tests.support.strict_skips import in_ci

LOCAL = "127.0.0.1:5432"
ROOT_WITH_APT = HostFacts(is_root=True, has_apt=True)
USER_WITH_APT = HostFacts(is_root=False, has_apt=True)
ROOT_WITHOUT_APT = HostFacts(is_root=True, has_apt=False)
# pytest-asyncio warns without its loop scope: keep the inner pytest runs as quiet as ours.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def facts(*missing: str, local_debian: bool = True, where: str = LOCAL) -> ServerFacts:
    return ServerFacts(where=where, major=15, missing=missing, local_debian=local_debian)


# --- the pre-flight's decision -------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "host", "expected"),
    [
        pytest.param(facts(), USER_WITH_APT, Ready(), id="all-there"),
        pytest.param(
            facts("pgtap", "plpgsql_check"),
            ROOT_WITH_APT,
            Install(("postgresql-15-pgtap", "postgresql-15-plpgsql-check")),
            id="root-installs-both",
        ),
        pytest.param(
            facts("plpgsql_check"),
            ROOT_WITH_APT,
            Install(("postgresql-15-plpgsql-check",)),
            id="root-installs-only-the-missing-one",
        ),
        pytest.param(
            facts("pgtap"),
            USER_WITH_APT,
            Stop(
                f"pgTAP is not installed for PostgreSQL 15 at {LOCAL}:"
                " as root run `apt-get install postgresql-15-pgtap`"
            ),
            id="not-root-stops",
        ),
        pytest.param(
            facts("pgtap", "plpgsql_check"),
            USER_WITH_APT,
            Stop(
                f"pgTAP and plpgsql_check are not installed for PostgreSQL 15 at {LOCAL}: as root"
                " run `apt-get install postgresql-15-pgtap postgresql-15-plpgsql-check`"
            ),
            id="not-root-stops-naming-both",
        ),
        pytest.param(
            facts("pgtap"),
            ROOT_WITHOUT_APT,
            Stop(
                f"pgTAP is not installed for PostgreSQL 15 at {LOCAL}: install it for that"
                " server (Debian: `apt-get install postgresql-15-pgtap`)"
            ),
            id="no-apt-stops",
        ),
        pytest.param(
            facts("pgtap", local_debian=False, where="db.example:5432"),
            ROOT_WITH_APT,
            Stop(
                "pgTAP is not installed for PostgreSQL 15 at db.example:5432: install it for"
                " that server (Debian: `apt-get install postgresql-15-pgtap`)"
            ),
            id="another-machine-is-never-installed-to",
        ),
    ],
)
def test_preflight_decides_install_or_stop(
    server: ServerFacts, host: HostFacts, expected: object
) -> None:
    assert decide(server, host) == expected


def test_preflight_install_is_checked_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "host_facts", lambda: ROOT_WITH_APT)
    installed: list[tuple[str, ...]] = []
    monkeypatch.setattr(preflight, "apt_install", lambda p: installed.append(tuple(p)))
    said: list[str] = []
    answers = iter([facts("pgtap"), facts()])
    preflight.ensure_extensions(lambda: next(answers), said.append)
    assert installed == [("postgresql-15-pgtap",)]
    assert said == ["pre-flight: installing postgresql-15-pgtap with apt-get"]
    # apt-get said yes but the extension is still not there: stop, do not run the tests
    answers = iter([facts("pgtap"), facts("pgtap")])
    with pytest.raises(pytest.UsageError, match=r"\(still missing after apt-get\)$"):
        preflight.ensure_extensions(lambda: next(answers), said.append)
    monkeypatch.setattr(preflight, "apt_install", lambda p: "E: Unable to locate package")
    with pytest.raises(pytest.UsageError, match=r"\(apt-get failed: E: Unable to locate package\)"):
        preflight.ensure_extensions(lambda: facts("pgtap"), said.append)


def test_preflight_stops_before_the_first_test_with_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef admin_conninfo():\n    return 'unused'\n"
    )
    pytester.makepyfile(
        "def test_needs_a_server(admin_conninfo):\n    pass\n\ndef test_unit():\n    pass\n"
    )
    monkeypatch.setattr(preflight, "facts_source", lambda environ: lambda: facts("pgtap"))
    monkeypatch.setattr(preflight, "host_facts", lambda: USER_WITH_APT)
    monkeypatch.delenv("PGPORTFOLIO_TEST_EXTENSIONS", raising=False)  # the PostgreSQL 18 run's
    result = pytester.runpytest("-p", "tests.support.preflight")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines + result.outlines if "ERROR" in line]
    assert errors == [
        f"ERROR: pgTAP is not installed for PostgreSQL 15 at {LOCAL}:"
        " as root run `apt-get install postgresql-15-pgtap`"
    ]
    result.assert_outcomes()  # not one test ran
    # a run that needs no database is not held up by the server's extensions
    assert pytester.runpytest("-p", "tests.support.preflight", "-k", "unit").ret == 0


@pytest.mark.debian_extensions
def test_server_facts_of_the_suites_server(admin_conninfo: str) -> None:
    found = preflight.server_facts(admin_conninfo)
    with psycopg.connect(admin_conninfo) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    assert found.major == row[0] // 10000
    assert found.missing == ()  # the pre-flight ran before this test


def test_local_binaries_facts_read_the_share_directory(tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "extension").mkdir(parents=True)
    (share / "extension" / "pgtap.control").write_text("")
    config = tmp_path / "pg_config"
    config.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --sharedir ] && echo {share} && exit 0\n'
        "echo 'PostgreSQL 16.2 (Debian 16.2-1.pgdg120+2)'\n"
    )
    config.chmod(0o755)
    found = preflight.local_binaries_facts(tmp_path)
    assert found == ServerFacts(
        where=f"{tmp_path} (the suite's throwaway cluster)",
        major=16,
        missing=("plpgsql_check",),
        local_debian=False,  # not /usr/share/postgresql/16: not ours to apt-get into
    )


# --- skips in CI ---------------------------------------------------------------------

SKIPPING_TESTS = """
import pytest

def test_needs_binaries():
    pytest.skip("no local PostgreSQL binaries")

@pytest.mark.skipif(True, reason="marked")
def test_marked():
    pass

def test_fine():
    pass
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("false", False), ("0", False)],
)
def test_in_ci(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_a_skip_stays_a_skip_locally_and_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_skips=SKIPPING_TESTS)
    pytester.makepyfile(
        test_module_skip="import pytest\npytest.skip('no docker', allow_module_level=True)\n"
    )
    monkeypatch.delenv("CI", raising=False)
    local = pytester.runpytest("-p", "tests.support.strict_skips", "-rs")
    local.assert_outcomes(passed=1, skipped=3)
    local.stdout.fnmatch_lines(["SKIPPED*no local PostgreSQL binaries"])

    monkeypatch.setenv("CI", "true")
    ci = pytester.runpytest("-p", "tests.support.strict_skips", "-rfE", "test_skips.py")
    # a skip in the test body fails it; a skip mark fails its setup (an error)
    ci.assert_outcomes(passed=1, failed=1, errors=1)
    ci.stdout.fnmatch_lines(
        ["*skipped in CI, where a missing prerequisite fails: no local PostgreSQL binaries*"]
    )
    assert ci.ret == pytest.ExitCode.TESTS_FAILED
    # a module that skips itself is a collection error, which stops the run
    module = pytester.runpytest("-p", "tests.support.strict_skips", "test_module_skip.py")
    module.assert_outcomes(errors=1)
    module.stdout.fnmatch_lines(["*skipped in CI, where a missing prerequisite fails: no docker*"])
