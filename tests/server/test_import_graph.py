"""What the service loads: the harness (tongke_bench) and synthetic peers stay out of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server.db.migrate import script_heads

HARNESS = ("tongke_bench", "media.synthetic", "benchmarks")


def _modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement`` (a clean sys.modules)."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _harness(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HARNESS))


def test_importing_the_app_does_not_import_the_harness() -> None:
    assert _harness(_modules_after("import server.app")) == []


def test_the_cli_imports_the_harness_only_for_its_commands() -> None:
    assert _harness(_modules_after("import server.cli; server.cli.build_parser()")) == []


def test_the_harness_imports_without_a_cycle() -> None:
    # Each module on its own in a fresh interpreter: a cycle shows as an ImportError.
    for module in ("nodes", "single", "run", "loss", "host", "demo_run"):
        assert f"tongke_bench.{module}" in _modules_after(f"import tongke_bench.{module}")


def test_the_service_does_not_import_alembic() -> None:
    assert not [m for m in _modules_after("import server.app") if m.startswith("alembic")]


def test_a_database_at_head_opens_without_loading_alembic(tmp_path: Path) -> None:
    # The first open migrates (Alembic); the next, at head, must not even import it.
    opening = (
        "import asyncio\n"
        "from server.db import open_database\n"
        "from server.settings import Settings\n"
        "async def main():\n"
        f"    async with open_database(Settings(data_dir={str(tmp_path)!r})) as db:\n"
        "        pass\n"
        "asyncio.run(main())"
    )
    first = _modules_after(opening)
    assert "alembic" in first
    again = _modules_after(opening)
    assert not [m for m in again if m.startswith("alembic")]
    assert len(script_heads()) == 1
