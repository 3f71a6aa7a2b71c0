"""DP3A Provinsi: pull returnee statistics by district (and month) and write a CSV.

    SINERGI_BASE_URL=... SINERGI_CLIENT_ID=... SINERGI_CLIENT_SECRET=... \\
        python examples/dp3a_stats.py out.csv [--by district,month] [--from 2025-01-01] [--to 2025-06-30]

Cells under the suppression threshold come back without a count: they are written with an
empty ``count`` and ``suppressed`` set to ``true``.
"""

from __future__ import annotations

import argparse
import csv
from datetime import date
from pathlib import Path

from sinergi_client import Sinergi


def write_stats(client: Sinergi, out: Path, by: list[str], from_: date | None = None, to: date | None = None) -> int:
    stats = client.stats.returnees(group_by=by, from_=from_, to=to)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*stats.group_by, "count", "suppressed"])
        for row in stats.rows:
            count = row.get("count")
            writer.writerow([*(row.get(d) for d in stats.group_by), "" if count is None else count,
                             "true" if row.get("suppressed") else "false"])
    print(f"{len(stats.rows)} rows (threshold {stats.threshold}) -> {out}")
    return len(stats.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--by", default="district", help="comma-separated dimensions (default: district)")
    parser.add_argument("--from", dest="from_", type=date.fromisoformat)
    parser.add_argument("--to", type=date.fromisoformat)
    args = parser.parse_args()
    with Sinergi() as client:
        write_stats(client, args.out, args.by.split(","), args.from_, args.to)


if __name__ == "__main__":
    main()
