"""Returnees written straight to the database, for tests of what is built on them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from typing import Any

from api.core.db import Database
from api.core.unit import operator_unit
from models import Person, Returnee, ReturnType, Sex, TraffickingStatus


async def insert_returnees(
    db: Database, source_agency: str, district: str, n: int = 1, **fields: Any
) -> list[uuid.UUID]:
    ids = []
    async with operator_unit(db, "test") as session:
        for i in range(n):
            person = Person()
            session.add(person)
            ref = f"T-{uuid.uuid4().hex[:10]}"
            values: dict[str, Any] = {
                "full_name": f"Returnee {district} {i}",
                "sex": Sex.F if i % 2 else Sex.M,
                "origin_district": district,
                "origin_subdistrict": f"{district}.0{1 + i % 9}",
                "return_type": ReturnType.deported,
                "return_date": date(2025, 6, 1 + i % 28),
                "entry_point": "PLBN Jagoi Babang",
                "trafficking_status": TraffickingStatus.possible,
                "nik_index": hashlib.sha256(ref.encode()).hexdigest(),
                "nik_enc": "encrypted-nik",
                "passport_enc": "encrypted-passport",
            }
            values.update(fields)
            r = Returnee(
                source_agency=source_agency,
                source_ref=ref,
                person_id=person.id,
                content_hash=hashlib.sha256(ref.encode()).hexdigest(),
                **values,
            )
            session.add(r)
            ids.append(r.id)
    return ids
