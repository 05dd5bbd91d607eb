"""The canonical model (pydantic v2): one class per record of the agreed Avro schemas (newest versions).

The Avro schema files are the contract; these classes mirror them field by field (names, types,
nullability, defaults, decimal precision/scale) and ``tests/documents/test_model_schema_agreement.py``
fails if they drift. Instances are frozen. ``model_for(schema_name)`` maps a schema name to its class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from xborder_gateway.model._types import Money, Quantity, Rate, Sha256, Timestamp, UnitPrice, Weight, WeightKg

__all__ = [
    "BusinessResponse",
    "CanonicalRecord",
    "CnDriver",
    "CnExportDeclaration",
    "CnGoodsLine",
    "CnParty",
    "CnRoadManifest",
    "Container",
    "Declaration",
    "DeclarationStatus",
    "Driver",
    "GateArrival",
    "GateDecision",
    "GoodsItem",
    "Invoice",
    "Party",
    "Receipt",
    "ResponseReason",
    "Vehicle",
    "VehicleManifest",
    "model_for",
]


class CanonicalRecord(BaseModel):
    """Base of every canonical record: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Party(CanonicalRecord):
    identifier: str | None = None
    name: str
    address: str | None = None
    postcode: str | None = None
    country: str | None = None
    phone: str | None = None


class Invoice(CanonicalRecord):
    number: str
    date: Timestamp | None = None
    payment_terms: str | None = None
    incoterm: str | None = None
    currency: str
    total: Money


class GoodsItem(CanonicalRecord):
    line_number: int
    hs_national: str
    hs6: str
    cn_code: str | None = None
    description: str
    origin_country: str
    tariff_schedule: str | None = None
    quantity: Quantity
    quantity_unit: str
    quantity2: Quantity | None = None
    quantity2_unit: str | None = None
    invoice_value: Money | None = None
    unit_price: UnitPrice | None = None
    unit_price_currency: str | None = None
    customs_value: Money | None = None
    customs_value_currency: str | None = None
    duty_rate: Rate | None = None
    exemption_code: str | None = None
    perishable: bool
    ciq_code: str | None = None
    species_code: str | None = None
    planting_area_code: str | None = None
    packing_house_code: str | None = None
    licence_number: str | None = None


class Declaration(CanonicalRecord):
    """``int.xborder.v1.Declaration`` (newest version, 4)."""

    document_type: str
    declaration_number: str
    first_declaration_number: str | None = None
    kind_code: str
    transport_mode: str
    national_transport_mode: str
    customs_office: str
    customs_team: str | None = None
    declared_on: Timestamp | None = None
    consignor: Party
    consignee: Party
    transport_documents: list[str] = []
    package_count: int
    package_type: str
    gross_weight: Weight | None = None
    gross_weight_unit: str | None = None
    gross_weight_kg: WeightKg | None = None
    marks: str | None = None
    means_of_transport: str | None = None
    loading_place: str
    unloading_place: str
    border_crossing_date: Timestamp
    containers: list[str] = []
    invoice: Invoice | None = None
    goods: list[GoodsItem]
    perishable: bool
    remarks: str | None = None
    cn_trade_mode: str | None = None
    phytosanitary_certificate: str | None = None
    version: int | None = Field(default=None, ge=1, le=999)  # v4: amendment version (ADR 0404, VER-5)


class Vehicle(CanonicalRecord):
    plate: str
    registration_country: str
    vehicle_type: str | None = None
    brand: str | None = None
    chassis_number: str | None = None
    engine_number: str | None = None
    owner_name: str | None = None


class Driver(CanonicalRecord):
    name: str
    nationality: str
    document_type: str | None = None
    passport_number: str | None = None
    border_pass_number: str | None = None


class Container(CanonicalRecord):
    number: str
    seals: list[str] = []
    full: bool | None = None
    size_type: str | None = None


class VehicleManifest(CanonicalRecord):
    """``int.xborder.v1.VehicleManifest`` (version 1)."""

    document_type: str
    direction: Literal["ARRIVAL", "DEPARTURE"]
    processing_type: Literal["REGISTER", "CORRECT", "CANCEL"]
    declaration_number: str
    border_gate: str
    crossing_at: Timestamp
    cargo_transport_batch: str | None = None
    vehicle: Vehicle
    drivers: list[Driver]
    containers: list[Container] = []
    linked_declarations: list[str] = []
    remarks: str | None = None


class ResponseReason(CanonicalRecord):
    code: str
    text: str


class Receipt(CanonicalRecord):
    """``int.xborder.v1.Receipt`` (version 2: version 1 plus the optional immediate business decision)."""

    message_id: str
    envelope_sha256: Sha256
    outcome: Literal["ACK", "NACK"]
    reason_code: str | None = None
    reason_text: str | None = None
    receiver_authority: str
    sender_authority: str
    received_at: Timestamp
    document_type: str | None = None
    business_key: str | None = None
    business_status: Literal["ACCEPTED", "HELD", "REJECTED"] | None = None
    business_reasons: list[ResponseReason] = []
    business_responded_at: Timestamp | None = None


class BusinessResponse(CanonicalRecord):
    """``int.xborder.v1.BusinessResponse`` (version 1)."""

    message_id: str
    business_key: str
    document_type: str
    status: Literal["ACCEPTED", "HELD", "REJECTED"]
    reasons: list[ResponseReason] = []
    responded_at: Timestamp


class StatusReason(CanonicalRecord):
    code: str
    text: str


class IntakePosition(CanonicalRecord):
    topic: str
    partition: int
    offset: int


class StatusVehicle(CanonicalRecord):
    plate: str
    containers: list[str] = []
    linked_declarations: list[str] = []
    perishable: bool = False


class DeclarationStatus(CanonicalRecord):
    """``int.xborder.v1.DeclarationStatus`` (version 1): one record of the status feed for senders."""

    declaration_number: str
    authority: str
    document_type: str | None = None
    state: Literal["TAKEN_IN", "REJECTED", "SENT", "RESENT", "DELIVERED", "BUSINESS_OUTCOME", "DEAD_LETTERED",
                   "LATE_RECEIPT"]
    at: Timestamp
    message_id: str | None = None
    attempt: int | None = None
    business_status: Literal["ACCEPTED", "HELD", "REJECTED", "PENDING"] | None = None
    reasons: list[StatusReason] = []
    intake: IntakePosition | None = None
    vehicle: StatusVehicle | None = None


class CnParty(CanonicalRecord):
    identifier: str | None = None
    name: str
    address: str | None = None
    country: str


class CnGoodsLine(CanonicalRecord):
    line_number: int
    hs_cn: str
    hs6: str
    description: str
    quantity: Quantity
    unit: str
    net_weight_kg: WeightKg | None = None
    gross_weight_kg: WeightKg | None = None
    value: Money
    origin_country: str


class CnExportDeclaration(CanonicalRecord):
    """``int.xborder.v1.CnExportDeclaration`` (version 1): China's export declaration, sent CN -> VN."""

    declaration_number: str
    declaration_version: int
    declared_at: Timestamp
    customs_office: str
    port_of_exit: str
    trade_mode: str | None = None
    consignor: CnParty
    consignee: CnParty
    vehicle_plate: str
    trailer_plate: str | None = None
    containers: list[str] = []
    incoterm: str
    currency: str
    total_value: Money
    gross_weight_kg: WeightKg
    goods: list[CnGoodsLine]
    remarks: str | None = None


class CnDriver(CanonicalRecord):
    name: str
    document_number: str


class CnRoadManifest(CanonicalRecord):
    """``int.xborder.v1.CnRoadManifest`` (version 1): China's road manifest of a truck, sent CN -> VN."""

    manifest_number: str
    manifest_version: int
    departure_at: Timestamp
    customs_office: str
    port_of_exit: str
    vehicle_plate: str
    trailer_plate: str | None = None
    vehicle_country: str
    drivers: list[CnDriver] = []
    containers: list[str] = []
    seals: list[str] = []
    declarations: list[str] = []
    gross_weight_kg: WeightKg
    perishable: bool
class GateArrival(CanonicalRecord):
    """``int.xborder.v1.GateArrival`` (version 1): a truck seen by a gate camera (site-local, docs/gate.md)."""

    arrival_id: str
    gate_id: str
    lane: str
    direction: Literal["EXIT_TO_CN", "ENTRY_FROM_CN"]
    plate_read: str
    plate_confidence: float
    containers_read: list[str] = []
    camera_time: Timestamp


class GateDecision(CanonicalRecord):
    """``int.xborder.v1.GateDecision`` (version 1): the gate's answer for one arrival (site-local)."""

    decision_id: str
    arrival_id: str
    sequence: int
    supersedes: str | None = None
    gate_id: str
    lane: str
    direction: Literal["EXIT_TO_CN", "ENTRY_FROM_CN"]
    colour: Literal["GREEN", "YELLOW", "RED"]
    reasons: list[str]
    notes: list[str] = []
    priority_lane: bool
    vehicle_declaration: str | None = None
    linked_declarations: list[str] = []
    match_score: float
    plate_hmac: str
    camera_time: Timestamp
    decided_at: Timestamp


_MODELS: dict[str, type[CanonicalRecord]] = {
    "Declaration": Declaration,
    "VehicleManifest": VehicleManifest,
    "Receipt": Receipt,
    "BusinessResponse": BusinessResponse,
    "DeclarationStatus": DeclarationStatus,
    "CnExportDeclaration": CnExportDeclaration,
    "CnRoadManifest": CnRoadManifest,
    "GateArrival": GateArrival,
    "GateDecision": GateDecision,
}


def model_for(schema_name: str) -> type[CanonicalRecord] | None:
    """The canonical model class of an agreed schema, or None for a schema that has no hand-written class."""
    return _MODELS.get(schema_name.rsplit(".", 1)[-1])
