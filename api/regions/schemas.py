"""What the region reference replies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.core.pagination import Keyset, Page

Level = Literal["province", "district", "subdistrict", "village"]


class RegionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str = Field(examples=["61.07"])
    name: str = Field(examples=["Kabupaten Bengkayang"])
    level: Level = Field(description="province | district (kabupaten / kota) | subdistrict (kecamatan) | "
                                     "village (desa / kelurahan)")
    parent: str | None = Field(examples=["61"], description="the code one level up; null for a province")


class RegionDetail(RegionOut):
    path: list[RegionOut] = Field(description="the regions above it, province first")
    children: int = Field(description="how many regions one level down the reference holds")
    complete_below: bool = Field(description="the reference holds every kecamatan and desa below this "
                                             "region's regency (Kalimantan Barat); false elsewhere")


class RegionList(Page[RegionOut]):
    pass


REGIONS = Keyset("regions", (str,))  # by code
