"""BP3MI: push a CSV of returnees in keyed batches and report the rejected rows by CSV line.

    SINERGI_BASE_URL=... SINERGI_CLIENT_ID=... SINERGI_CLIENT_SECRET=... \\
        python examples/bp3mi_push.py returnees.csv [--batch-size 500] [--notify]

The CSV's header names the record fields (``source_ref``, ``full_name``, ``sex``,
``origin_district``, ``return_type``, ``return_date``, ...; lists such as ``control_methods``
separated by ``;``). Each batch is sent under the key ``<file>:<content hash>:<batch>``, so
running the script again on the same file replays the first replies instead of writing twice.
Exit status 1 when a row was rejected.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path
from typing import Any

from sinergi_client import Sinergi

LISTS = ("control_methods", "exploitation_types")


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` per row; empty cells are left out (not known)."""
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        for row in reader:
            record: dict[str, Any] = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
            for name in LISTS:
                if name in record:
                    record[name] = [x.strip() for x in record[name].split(";") if x.strip()]
            rows.append((reader.line_num, record))
    return rows


def push(client: Sinergi, path: Path, batch_size: int = 500, notify: bool = False) -> int:
    rows = read_rows(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    counts: dict[str, int] = {}
    rejected = 0
    for number, start in enumerate(range(0, len(rows), batch_size), 1):
        batch = rows[start:start + batch_size]
        result = client.returnees.push([r for _, r in batch], notify=notify,
                                       idempotency_key=f"{path.name}:{digest}:{number}")
        for item in result.results:
            counts[item.status] = counts.get(item.status, 0) + 1
            if item.status == "rejected":
                rejected += 1
                line = batch[item.index][0]
                for error in item.errors:
                    print(f"{path.name}:{line}: {item.source_ref or '-'}: {error.field}: {error.message}")
    print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no rows")
    return 1 if rejected else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--notify", action="store_true", help="raise deportation notices for the districts")
    args = parser.parse_args()
    with Sinergi() as client:  # SINERGI_BASE_URL, SINERGI_CLIENT_ID, SINERGI_CLIENT_SECRET
        sys.exit(push(client, args.csv, args.batch_size, args.notify))


if __name__ == "__main__":
    main()
