"""A realistic day at the Lang Son gates, deterministic by seed (``xborder gate simulate``, demo, bench).

Driven from a list of pre-declared vehicles (:class:`VehicleDeclarationSeen`, e.g. the demo's TIR/TOR
documents), it produces what the cameras would see and what the status feed would have said:

- volume: 1,200-1,500 trucks a day, 1,500-1,900 in the fruit season (May-September), when also more of
  the exits are perishable (durian, dragon fruit, jackfruit);
- time: the gates work 07:00-23:00 local time (UTC+7) with a morning and an afternoon peak, plus
  convoys: 2-4 times a day the logistics park releases 50 trucks that reach the gate within one second;
- reads: most plates read cleanly (confidence ~0.95); some with OCR confusions (0/O, 8/B, 1/I, 5/S),
  a missing character, or nothing at all; containers read on most trucks, a few with a wrong check digit;
- trucks with no pre-declaration at all (~3 %), and a few second arrivals on a clearance already used.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from xborder_gateway.gate._model import (
    Arrival,
    DeclarationStatus,
    DeclState,
    Direction,
    MirrorFinding,
    VehicleDeclarationSeen,
    ViewEvent,
)
from xborder_gateway.gate._plates import container_check_digit, plate_kind

__all__ = ["DayPlan", "display_plate", "simulate_day", "simulate_feed", "simulate_hour", "simulate_hour_marked",
           "synthetic_vehicles", "trucks_per_day"]

_LOCAL: Final = dt.timezone(dt.timedelta(hours=7))
_GATES: Final = (("HUU_NGHI", 60), ("TAN_THANH", 25), ("CHI_MA", 10), ("COC_NAM", 5))
_CONFUSE: Final = {"0": "O", "O": "0", "8": "B", "B": "8", "1": "I", "I": "1", "5": "S", "S": "5", "2": "Z"}
_OWNERS: Final = ("MSCU", "CSQU", "TGHU", "OOLU", "COSU", "SEGU", "TCLU", "GESU")
#: arrivals per hour of the local day (07:00-22:59), morning and afternoon peaks
_HOURLY: Final = (0, 0, 0, 0, 0, 0, 0, 4, 7, 9, 9, 8, 5, 6, 8, 9, 9, 8, 6, 5, 4, 3, 2, 0)


def trucks_per_day(day: dt.date, rng: random.Random) -> int:
    """1,200-1,500 trucks a day; 1,500-1,900 in the fruit season (May-September)."""
    return rng.randint(1500, 1900) if 5 <= day.month <= 9 else rng.randint(1200, 1500)


def display_plate(canonical: str) -> str:
    """How a plate is painted: ``12C34567`` -> ``12C-345.67``, ``29H123456`` -> ``29H1-234.56``,
    ``桂A12345`` -> ``桂A·12345``."""
    kind = plate_kind(canonical)
    if kind == "VN":
        head, tail = (canonical[:-5], canonical[-5:]) if len(canonical) >= 9 or canonical[3].isalpha() \
            else (canonical[:3], canonical[3:])
        if len(tail) == 5:
            return f"{head}-{tail[:3]}.{tail[3:]}"
        return f"{head}-{tail}"
    if kind == "CN":
        return f"{canonical[:2]}·{canonical[2:]}"
    return canonical


def _container(rng: random.Random) -> str:
    first = rng.choice(_OWNERS) + "".join(rng.choice("0123456789") for _ in range(6))
    return first + str(container_check_digit(first))


def _vn_plate(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"{rng.choice(['29H', '12H', '15H'])}{rng.randint(1, 9)}{rng.randint(10000, 99999)}"
    return f"{rng.choice(['12C', '12H', '29C', '15C', '51D', '63C', '98C'])}{rng.randint(10000, 99999)}"


def _cn_plate(rng: random.Random) -> str:
    return f"桂{rng.choice('AFKNPR')}{rng.randint(10000, 99999)}"


def synthetic_vehicles(day: dt.date, seed: int | str, count: int | None = None) -> list[VehicleDeclarationSeen]:
    """A day's pre-declared vehicles (when no documents drive the simulation)."""
    rng = random.Random(f"vehicles:{seed}:{day.isoformat()}")  # noqa: S311 - reproducible test data
    n = count if count is not None else trucks_per_day(day, rng)
    season = 5 <= day.month <= 9
    out: list[VehicleDeclarationSeen] = []
    for i in range(n):
        exit_ = rng.random() < 0.6
        perishable = exit_ and rng.random() < (0.7 if season else 0.3)
        cn_truck = rng.random() < 0.5
        plate = _cn_plate(rng) if cn_truck else _vn_plate(rng)
        linked = tuple(f"{'30' if exit_ else '10'}{rng.randint(0, 10**10 - 1):010d}"
                       for _ in range(1 if perishable else rng.randint(1, 3)))
        containers = tuple(_container(rng) for _ in range(rng.choice((0, 1, 1, 1, 2))))
        out.append(VehicleDeclarationSeen(
            number=f"{'91' if exit_ else '90'}{i:010d}", direction=Direction.EXIT_TO_CN if exit_
            else Direction.ENTRY_FROM_CN, plate=plate, containers=containers, linked=linked,
            perishable=perishable))
    return out


@dataclass(frozen=True)
class DayPlan:
    """The shares of the simulated day (the defaults are the realistic day described above)."""

    confusion_rate: float = 0.06
    missing_char_rate: float = 0.02
    unreadable_rate: float = 0.01
    low_confidence_rate: float = 0.03
    undeclared_rate: float = 0.03
    second_arrival_rate: float = 0.005
    convoys: tuple[int, int] = (2, 4)
    convoy_size: int = 50
    start_hour: int | None = None
    """Simulate only this local hour (a "simulated hour at the gate"); None = the whole day."""
    extra: dict[str, float] = field(default_factory=dict)


def _read(rng: random.Random, canonical: str, plan: DayPlan) -> tuple[str, float]:
    x = rng.random()
    shown = display_plate(canonical)
    if x < plan.unreadable_rate:
        return "", round(rng.uniform(0.05, 0.3), 3)
    x -= plan.unreadable_rate
    if x < plan.confusion_rate:
        chars = list(shown)
        spots = [i for i, c in enumerate(chars) if c in _CONFUSE]
        for i in rng.sample(spots, min(len(spots), rng.choice((1, 1, 2)))):
            chars[i] = _CONFUSE[chars[i]]
        return "".join(chars), round(rng.uniform(0.7, 0.97), 3)
    x -= plan.confusion_rate
    if x < plan.missing_char_rate:
        i = rng.randrange(len(shown))
        return shown[:i] + shown[i + 1:], round(rng.uniform(0.6, 0.9), 3)
    x -= plan.missing_char_rate
    if x < plan.low_confidence_rate:
        return shown, round(rng.uniform(0.5, 0.84), 3)
    return shown, round(min(1.0, rng.gauss(0.955, 0.02)), 3)


def _times(rng: random.Random, day: dt.date, n: int, plan: DayPlan) -> list[int]:
    hours = [h for h in range(24) if _HOURLY[h] and (plan.start_hour is None or h == plan.start_hour)]
    weights = [_HOURLY[h] for h in hours]
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=_LOCAL)
    base = int(midnight.timestamp() * 1000)
    times: list[int] = []
    convoys = rng.randint(*plan.convoys) if plan.start_hour is None else 1
    in_convoys = min(n, convoys * plan.convoy_size)
    for _ in range(convoys):
        start = base + rng.choices(hours, weights)[0] * 3_600_000 + rng.randrange(3_600_000 - 1000)
        size = min(plan.convoy_size, in_convoys - (len(times)))
        times.extend(start + rng.randrange(1000) for _ in range(max(0, size)))
    while len(times) < n:
        times.append(base + rng.choices(hours, weights)[0] * 3_600_000 + rng.randrange(3_600_000))
    rng.shuffle(times)
    return times


def simulate_day(vehicles: Sequence[VehicleDeclarationSeen], day: dt.date, seed: int | str,
                 plan: DayPlan | None = None) -> list[Arrival]:
    """The camera events of one day for ``vehicles`` (each arrives once), plus undeclared trucks and a
    few second arrivals; sorted by camera time. Deterministic for (vehicles, day, seed, plan)."""
    plan = plan or DayPlan()
    rng = random.Random(f"day:{seed}:{day.isoformat()}")  # noqa: S311 - reproducible test data
    trucks: list[VehicleDeclarationSeen | None] = list(vehicles)
    if plan.start_hour is not None:  # one hour: its share of the day's trucks
        share = _HOURLY[plan.start_hour] / sum(_HOURLY)
        trucks = list(rng.sample(list(vehicles), max(1, round(len(vehicles) * share))))
    undeclared = round(len(trucks) * plan.undeclared_rate)
    trucks.extend([None] * undeclared)
    repeats = [v for v in trucks if v is not None and rng.random() < plan.second_arrival_rate]
    trucks.extend(repeats)
    times = _times(rng, day, len(trucks), plan)
    arrivals: list[Arrival] = []
    for i, (truck, at) in enumerate(zip(trucks, times, strict=True)):
        arrivals.append(_arrival(rng, f"{{gate}}-{day:%Y%m%d}-{i:05d}", truck, at, plan))
    arrivals.sort(key=lambda a: (a.camera_ms, a.arrival_id))
    return arrivals


def simulate_hour(vehicles: Sequence[VehicleDeclarationSeen], start_ms: int, seed: int | str, *,
                  prefix: str = "hour", plan: DayPlan | None = None) -> list[Arrival]:
    """One hour at the gate for ``vehicles`` (the demo's own vehicle declarations): every vehicle arrives
    once within ``[start_ms, start_ms + 1 h)``; one convoy of up to ``plan.convoy_size`` of them reaches the
    gate within one second; OCR errors and low-confidence reads at the plan's rates; ``undeclared_rate`` of
    extra trucks with no pre-declaration (at least two, and two of them always read cleanly, so that the
    hour shows the rule) and a few second arrivals on a used clearance (at least one when there are
    vehicles). Arrival ids are ``<prefix>-<nnnn>``; sorted by camera time. See :func:`simulate_hour_marked`."""
    return simulate_hour_marked(vehicles, start_ms, seed, prefix=prefix, plan=plan)[0]


_CLEAN_READS = DayPlan(confusion_rate=0.0, missing_char_rate=0.0, unreadable_rate=0.0, low_confidence_rate=0.0)


def simulate_hour_marked(vehicles: Sequence[VehicleDeclarationSeen], start_ms: int, seed: int | str, *,
                         prefix: str = "hour", plan: DayPlan | None = None) -> tuple[list[Arrival], frozenset[str]]:
    """:func:`simulate_hour`, and the ids of the arrivals of trucks with no pre-declaration (which the gate
    must never clear GREEN)."""
    plan = plan or DayPlan()
    rng = random.Random(f"hour:{seed}:{start_ms}")  # noqa: S311 - reproducible test data
    undeclared = max(2, round(len(vehicles) * plan.undeclared_rate))
    # (truck, plan of its read): None is a truck with no pre-declaration; the first two read cleanly
    trucks: list[tuple[VehicleDeclarationSeen | None, DayPlan]] = [(v, plan) for v in vehicles]
    trucks.extend((None, _CLEAN_READS if i < 2 else plan) for i in range(undeclared))
    repeats = [v for v in vehicles if rng.random() < plan.second_arrival_rate]
    if not repeats and vehicles:
        repeats = [rng.choice(list(vehicles))]
    rng.shuffle(trucks)
    convoy = min(plan.convoy_size, len(trucks))
    convoy_at = start_ms + rng.randrange(600_000, 3_000_000)
    times = [convoy_at + rng.randrange(1000) for _ in range(convoy)]
    times += [start_ms + rng.randrange(3_600_000) for _ in range(len(trucks) - convoy)]
    # a second arrival comes after the first (same truck turned back and tries again, or a cloned plate)
    timed = [(t, p, at) for (t, p), at in zip(trucks, times, strict=True)]
    first_at = {t.number: at for t, _, at in timed if t is not None}
    timed += [(v, plan, min(start_ms + 3_599_999, first_at[v.number] + rng.randrange(60_000, 900_000)))
              for v in repeats]
    arrivals = [_arrival(rng, f"{prefix}-{i:04d}", truck, at, reads) for i, (truck, reads, at) in enumerate(timed)]
    marked = frozenset(a.arrival_id for a, (truck, _, _) in zip(arrivals, timed, strict=True) if truck is None)
    arrivals.sort(key=lambda a: (a.camera_ms, a.arrival_id))
    return arrivals, marked


def _arrival(rng: random.Random, arrival_id: str, truck: VehicleDeclarationSeen | None, at: int,
             plan: DayPlan) -> Arrival:
    """One camera event for ``truck`` (None: a truck with no pre-declaration), named ``arrival_id`` with
    ``{gate}`` replaced by the drawn gate's id in lower case. The
    day and the demo's hour draw every arrival through here, in the same order of random draws."""
    gate = rng.choices([g for g, _ in _GATES], [w for _, w in _GATES])[0]
    if truck is None:
        plate = _vn_plate(rng) if rng.random() < 0.5 else _cn_plate(rng)
        direction = Direction.EXIT_TO_CN if rng.random() < 0.6 else Direction.ENTRY_FROM_CN
        boxes: tuple[str, ...] = (_container(rng),) if rng.random() < 0.5 else ()
        perishable = False
    else:
        plate, direction, boxes, perishable = truck.plate, truck.direction, truck.containers, truck.perishable
    read, confidence = _read(rng, plate, plan)
    seen = tuple(b if rng.random() > 0.03 or not b[-1:].isdigit() else b[:-1] + str((int(b[-1]) + 1) % 10)
                 for b in boxes if rng.random() < 0.85)
    lane = "P1" if perishable and rng.random() < 0.8 else f"L{rng.randint(1, 4)}"
    return Arrival(arrival_id=arrival_id.replace("{gate}", gate.lower()), gate_id=gate, lane=lane,
                   direction=direction, plate_read=read, plate_confidence=confidence, camera_ms=at,
                   containers_read=seen)


def simulate_feed(vehicles: Sequence[VehicleDeclarationSeen], seed: int | str, at_ms: int,
                  *, late_share: float = 0.04) -> tuple[list[ViewEvent], list[ViewEvent]]:
    """What the status feed says about ``vehicles`` before the day (first list) and late, after their trucks
    reached the gate (second list: business responses arriving after the truck, which supersede).

    Shares: ~86 % of vehicles with every declaration ACCEPTED; HELD 4 %; REJECTED 1.5 %; dead-lettered 0.5 %;
    a blocking mirror finding 2 %; answer still outstanding (delivered, not answered) ``late_share``, whose
    ACCEPTED answer comes in the second list.
    """
    rng = random.Random(f"feed:{seed}")  # noqa: S311 - reproducible test data
    before: list[ViewEvent] = []
    late: list[ViewEvent] = []
    sent = at_ms - 3_600_000
    for v in vehicles:
        before.append(v)
        numbers = (v.number, *v.linked)
        for n in numbers:
            before.append(DeclarationStatus(n, DeclState.SENT, sent))
            before.append(DeclarationStatus(n, DeclState.DELIVERED, sent + 500))
        x = rng.random()
        target = rng.choice(numbers[1:] or numbers)
        for n in numbers:
            if n != target or x >= 0.14:
                before.append(DeclarationStatus(n, DeclState.ACCEPTED, sent + 1000))
        if x < 0.04:
            before.append(DeclarationStatus(target, DeclState.HELD, sent + 1000, ("SPS_PUC_NOT_REGISTERED",)))
        elif x < 0.055:
            before.append(DeclarationStatus(target, DeclState.REJECTED, sent + 1000, ("SPS_PRODUCT_NOT_ADMITTED",)))
        elif x < 0.06:
            before.append(DeclarationStatus(target, DeclState.DEAD_LETTERED, sent + 60_000))
        elif x < 0.08:
            before.append(DeclarationStatus(target, DeclState.ACCEPTED, sent + 1000))
            before.append(MirrorFinding(target, "HS6_MISMATCH"))
        elif x < 0.08 + late_share:
            late.append(DeclarationStatus(target, DeclState.ACCEPTED, at_ms))
        else:
            before.append(DeclarationStatus(target, DeclState.ACCEPTED, sent + 1000))
    return before, late
