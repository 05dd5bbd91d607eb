"""Field types shared by the canonical models; each mirrors an Avro type of schemas/avro."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, Field

__all__ = ["Money", "Quantity", "Rate", "Sha256", "Timestamp", "UnitPrice", "Weight", "WeightKg"]

Money = Annotated[Decimal, Field(max_digits=24, decimal_places=4)]
"""Avro ``bytes`` decimal(24, 4)."""
Quantity = Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
"""Avro ``bytes`` decimal(18, 4)."""
UnitPrice = Annotated[Decimal, Field(max_digits=18, decimal_places=6)]
"""Avro ``bytes`` decimal(18, 6)."""
Rate = Annotated[Decimal, Field(max_digits=9, decimal_places=4)]
"""Avro ``bytes`` decimal(9, 4)."""
Weight = Annotated[Decimal, Field(max_digits=12, decimal_places=3)]
"""Avro ``bytes`` decimal(12, 3)."""
WeightKg = Annotated[Decimal, Field(max_digits=15, decimal_places=3)]
"""Avro ``bytes`` decimal(15, 3)."""
Timestamp = AwareDatetime
"""Avro ``long`` timestamp-millis (UTC)."""
Sha256 = Annotated[bytes, Field(min_length=32, max_length=32)]
"""Avro ``fixed`` Sha256 (32 bytes)."""
