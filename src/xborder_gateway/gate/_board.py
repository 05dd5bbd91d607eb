"""``xborder gate board``: what an operator at the logistics park keeps open (from the gate's own view).

Waiting = arrivals whose current decision is YELLOW or RED and that were seen within the window (the
gate has no departure events yet: a truck leaves the board when it is superseded GREEN or ages out).
Plates are shown masked (``12C-***.60``): the board identifies trucks by arrival id, lane and time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xborder_gateway.gate._store import GateStore

__all__ = ["board_data", "mask_plate", "render_board"]


def mask_plate(plate: str | None) -> str:
    if not plate:
        return "(unread)"
    if len(plate) <= 4:
        return "*" * len(plate)
    return plate[:3] + "*" * (len(plate) - 5) + plate[-2:]


def _fmt_age(ms: int) -> str:
    s = max(0, ms // 1000)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def board_data(store: GateStore, now_ms: int, window_ms: int = 12 * 3_600_000) -> dict[str, Any]:
    since = now_ms - window_ms
    gates: dict[str, dict[str, Any]] = {}
    for gate, colour, n in store.query(
            "SELECT gate_id, colour, count(*) FROM arrivals WHERE camera_ms>=? GROUP BY gate_id, colour", (since,)):
        g = gates.setdefault(str(gate), {"GREEN": 0, "YELLOW": 0, "RED": 0, "waiting": 0, "oldest_ms": None,
                                         "perishable_waiting": 0})
        g[str(colour)] = int(n)  # type: ignore[call-overload]
    for gate, n, oldest, perishable in store.query(
            "SELECT gate_id, count(*), min(camera_ms), sum(perishable) FROM arrivals WHERE camera_ms>=? AND "
            "colour IN ('YELLOW','RED') GROUP BY gate_id", (since,)):
        g = gates[str(gate)]
        g["waiting"] = int(n)  # type: ignore[call-overload]
        g["oldest_ms"] = now_ms - int(oldest)  # type: ignore[call-overload]
        g["perishable_waiting"] = int(perishable or 0)  # type: ignore[call-overload]
    why = {str(r): int(n) for r, n in store.query(  # type: ignore[call-overload]
        "SELECT reason, count(*) FROM arrivals WHERE camera_ms>=? AND colour IN ('YELLOW','RED') GROUP BY reason "
        "ORDER BY count(*) DESC, reason", (since,))}
    hour = 3_600_000
    per_hour = {datetime.fromtimestamp(int(h) * hour / 1000, UTC).strftime("%H:00"): int(n)  # type: ignore[call-overload]
                for h, n in store.query("SELECT decided_ms / ? AS h, count(*) FROM decisions WHERE decided_ms>=? "
                                        "GROUP BY h ORDER BY h DESC LIMIT 6", (hour, now_ms - 6 * hour))}
    superseded = [{"decision_id": str(d), "supersedes": str(s), "colour": str(c)} for d, s, c in store.query(
        "SELECT decision_id, supersedes, colour FROM decisions WHERE supersedes IS NOT NULL "
        "ORDER BY decided_ms DESC, decision_id LIMIT 5")]
    oldest = store.query("SELECT arrival_id, gate_id, lane, colour, reason, camera_ms, plate, perishable "
                         "FROM arrivals WHERE camera_ms>=? AND colour IN ('YELLOW','RED') ORDER BY camera_ms "
                         "LIMIT 8", (since,))
    return {
        "at": datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "gates": gates, "why_stopped": why, "decisions_per_hour": per_hour, "superseded": superseded,
        "oldest_waiting": [{"arrival_id": str(a), "gate": str(g), "lane": str(ln), "colour": str(c),
                            "reason": str(r), "waiting_ms": now_ms - int(t),  # type: ignore[call-overload]
                            "plate": mask_plate(p if isinstance(p, str) else None), "perishable": bool(pe)}
                           for a, g, ln, c, r, t, p, pe in oldest],
    }


def render_board(data: dict[str, Any]) -> str:
    lines = [f"xborder gate board  {data['at']}", ""]
    lines.append(f"{'gate':<11}{'GREEN':>7}{'YELLOW':>8}{'RED':>6}{'waiting':>9}{'oldest':>9}{'perishable':>12}")
    for gate, g in sorted(data["gates"].items()):
        oldest = _fmt_age(g["oldest_ms"]) if g["oldest_ms"] is not None else "-"
        lines.append(f"{gate:<11}{g['GREEN']:>7}{g['YELLOW']:>8}{g['RED']:>6}{g['waiting']:>9}{oldest:>9}"
                     f"{g['perishable_waiting']:>12}")
    if not data["gates"]:
        lines.append("(no arrivals in the window)")
    lines += ["", "why the YELLOW/RED ones stopped:"]
    lines += [f"  {reason:<30}{n:>6}" for reason, n in data["why_stopped"].items()] or ["  (none waiting)"]
    lines += ["", "oldest waiting:"]
    lines += [f"  {w['arrival_id']:<28} {w['gate']:<10} {w['lane']:<3} {w['colour']:<6} {w['reason']:<28} "
              f"{_fmt_age(w['waiting_ms']):>7} {w['plate']}{'  perishable' if w['perishable'] else ''}"
              for w in data["oldest_waiting"]] or ["  (none)"]
    per_hour = "  ".join(f"{h} {n}" for h, n in data["decisions_per_hour"].items())
    lines += ["", f"decisions per hour: {per_hour or '(none in the last 6 h)'}"]
    if data["superseded"]:
        lines += ["superseded (latest): " + ", ".join(
            f"{s['supersedes']} -> {s['decision_id']} {s['colour']}" for s in data["superseded"])]
    return "\n".join(lines) + "\n"
