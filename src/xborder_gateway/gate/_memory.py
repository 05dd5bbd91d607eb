"""An in-memory :class:`~xborder_gateway.gate._decide.GateView` for table-driven tests of the core."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from xborder_gateway.gate._decide import DeclRecord
from xborder_gateway.gate._model import DeclState, MirrorFinding, VehicleDeclarationSeen
from xborder_gateway.gate._plates import PlateIndex, PlateMatch

__all__ = ["MemoryView"]


@dataclass
class MemoryView:
    """Vehicles, declaration states, findings and clearances held in dicts (no persistence)."""

    index: PlateIndex = field(default_factory=PlateIndex)
    by_plate: dict[str, list[VehicleDeclarationSeen]] = field(default_factory=dict)
    states: dict[str, DeclRecord] = field(default_factory=dict)
    mirror: dict[str, list[MirrorFinding]] = field(default_factory=dict)
    clearances: dict[str, str] = field(default_factory=dict)

    def add_vehicle(self, v: VehicleDeclarationSeen) -> MemoryView:
        self.by_plate.setdefault(v.plate, []).append(v)
        self.index.add(v.plate)
        return self

    def set_state(self, number: str, state: DeclState, sent_ms: int = 0) -> MemoryView:
        self.states[number] = DeclRecord(state, sent_ms)
        return self

    def add_finding(self, f: MirrorFinding) -> MemoryView:
        self.mirror.setdefault(f.number, []).append(f)
        return self

    def plate_matches(self, plate: str) -> Sequence[PlateMatch]:
        return self.index.lookup(plate)

    def vehicles(self, plate: str) -> Sequence[VehicleDeclarationSeen]:
        return self.by_plate.get(plate, [])

    def declaration(self, number: str) -> DeclRecord | None:
        return self.states.get(number)

    def findings(self, number: str) -> Sequence[MirrorFinding]:
        return self.mirror.get(number, [])

    def clearance_holder(self, vehicle_declaration: str) -> str | None:
        return self.clearances.get(vehicle_declaration)
