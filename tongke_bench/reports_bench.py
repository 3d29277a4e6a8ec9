"""How fast the 督导 dashboard answers: ``python -m tongke_bench.reports_bench``.

Against a district seeded by ``python -m tongke_bench.seed_district``: the real app (its
lifespan, sign-in, access rules, SQL) in this process through Starlette's TestClient (no
socket), timing each request the dashboard makes for the seeded term: the district's
summary (its main request), a county's summary, a county's lessons, and the XLSX export.
Prints the median, the 90th percentile and the best of --repeat runs after one warm-up;
then the main request with the stored weeks emptied (it stores the term again) and right
after a write to a past week (it recomputes that school's week).
docs/benchmarks.md "督导 reports". A bench harness, not a product API.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _time(client: Any, path: str, headers: dict[str, str], repeat: int) -> list[float]:
    response = client.get(path, headers=headers)  # warm-up (and a check)
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code}: {response.text[:200]}")
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return out


def _sql(database_url: str, statement: str) -> None:
    """One statement on the bench's database, outside the app (as another writer would)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from server.db.migrate import async_url

    async def run() -> None:
        engine = create_async_engine(async_url(database_url))
        async with engine.begin() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


def _after(
    client: Any, path: str, headers: dict[str, str], repeat: int, before: Any
) -> list[float]:
    """The request timed right after `before()` each time."""
    out = []
    for n in range(repeat):
        before(n)
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return out


def _line(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return (
        f"{name:38s} median {statistics.median(ms):7.1f} ms  p90 {p90:7.1f} ms  "
        f"best {ms[0]:7.1f} ms  (n={len(ms)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tongke_bench.reports_bench")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--data-dir", default="data-district", type=Path)
    parser.add_argument("--password", default="tongke-demo")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings

    settings = Settings(data_dir=args.data_dir, database_url=args.database_url, seed_demo=False)
    with TestClient(create_app(settings)) as client:
        login = client.post(
            "/api/auth/login", json={"username": "district-admin", "password": args.password}
        )
        if login.status_code != 200:
            raise SystemExit(f"sign-in as district-admin failed: {login.text[:200]}")
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        terms = client.get("/api/terms", headers=headers).json()
        if not terms:
            raise SystemExit(
                "no term: seed the district first (python -m tongke_bench.seed_district)"
            )
        term = terms[0]
        county = client.get("/api/counties", headers=headers).json()[0]
        base = f"period=term&term_id={term['id']}"
        in_county = f"{base}&county_id={county['id']}"
        requests = {
            "district summary (term, by county)": f"/api/reports/summary?{base}",
            "county summary (term, by school)": f"/api/reports/summary?{in_county}",
            "county lessons (term, drill-down)": f"/api/reports/lessons?{in_county}",
            "district XLSX (term)": f"/api/reports/summary.xlsx?{base}",
        }
        summary = client.get(requests["district summary (term, by county)"], headers=headers)
        totals = summary.json()["totals"]
        print(
            f"term {term['first_day']}..{term['last_day']}: scheduled {totals['scheduled']:,}, "
            f"held {totals['held']:,}, attendance rows {totals['expected']:,}"
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for name, path in requests.items():
            print(_line(name, _time(client, path, headers, args.repeat)))
        main_request = requests["district summary (term, by county)"]
        url = settings.database_url

        def empty_store(_: int) -> None:
            _sql(url, "DELETE FROM report_school_weeks")
            _sql(url, "DELETE FROM report_weeks")

        def change_a_past_lesson(n: int) -> None:
            # Any write a figure counts leaves a mark (migration 0011's triggers).
            _sql(url, "UPDATE lessons SET title = title WHERE id = (SELECT id FROM lessons "
                      f"ORDER BY id LIMIT 1 OFFSET {1000 * (n + 1)})")  # fmt: skip

        cold = _after(client, main_request, headers, min(args.repeat, 3), empty_store)
        print(_line("district summary, store emptied", cold))
        changed = _after(client, main_request, headers, args.repeat, change_a_past_lesson)
        print(_line("district summary, a past lesson changed", changed))
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
