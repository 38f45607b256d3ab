"""Money and time-to-train from measured figures: dollars per million tokens, and how long a token budget takes here.

Everything here is arithmetic on what a run measured (tokens/s, joules per token) and what the user priced
(``--price-per-hour``, ``--energy-price``); nothing is estimated. A figure that needs something missing (no price, no
energy measurement) is null, never a guess. Results (per experiment; ``projection`` for train only)::

    "cost":       {"usd_per_million_tokens", "usd_per_million_tokens_energy", "price_per_hour", "energy_price",
                   "devices"}
    "projection": {"target_tokens", "target_basis", "tokens_per_sec", "hours", "days", "kwh", "usd", "usd_energy",
                   "devices", "scaled": {... the same for --project-devices N, "assumption": "..."}}

``usd`` is device-hours times --price-per-hour (a rented machine's bill includes its power); ``usd_energy`` is the
energy drawn times --energy-price (what owning the machine costs per run, besides buying it).
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from gpt2_lightning.report.formats import fmt_count as fmt_tokens  # 10B, 2.48B, 1.5T, 300M tokens

TOKENS_PER_PARAM = 20  # compute-optimal training tokens per parameter (Hoffmann et al. 2022, "Chinchilla")
J_PER_KWH = 3.6e6
SUFFIXES = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
LINEAR_ASSUMPTION = "linear scaling from the measured devices: assumed, not measured"


def parse_token_count(text: str) -> int:
    """'300M', '10B', '1.5T', '2500000' -> a positive whole number of tokens; ValueError says what is accepted."""
    raw = str(text).strip().replace("_", "").replace(",", "")
    scale = SUFFIXES.get(raw[-1:].upper(), 1) if raw else 1
    number = raw[:-1] if scale != 1 else raw
    try:
        value = Decimal(number) * scale if number and (scale != 1 or number.isdigit()) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value != value.to_integral_value() or value <= 0:
        raise ValueError("a positive token count: a whole number (2500000) or one with K, M, B or T (300M, 10B, 1.5T)")
    return int(value)


def target_tokens(config: dict[str, Any]) -> tuple[int, str]:
    """(tokens, why that many): --target-tokens, else 20 per model parameter."""
    if config.get("target_tokens"):
        return parse_token_count(config["target_tokens"]), "--target-tokens"
    return TOKENS_PER_PARAM * int(config["num_params"]), f"{TOKENS_PER_PARAM} per parameter, Hoffmann et al. 2022"


# ------------------------------------------------------------------------------------------------ arithmetic
def cost(tokens_per_sec: float | None, devices: int, joules_per_token: float | None, price_per_hour: float | None,
         energy_price: float | None) -> dict[str, Any]:
    """Dollars per million tokens at the measured rate (device-hours) and at the measured energy (kWh)."""
    per_hour = None
    if price_per_hour is not None and tokens_per_sec:
        hours_per_million = 1e6 / tokens_per_sec / 3600.0
        per_hour = hours_per_million * price_per_hour * devices
    per_energy = None
    if energy_price is not None and joules_per_token is not None:
        per_energy = joules_per_token * 1e6 / J_PER_KWH * energy_price
    return {"usd_per_million_tokens": per_hour, "usd_per_million_tokens_energy": per_energy,
            "price_per_hour": price_per_hour, "energy_price": energy_price, "devices": devices}


def projection(tokens: int, tokens_per_sec: float, devices: int, joules_per_token: float | None,
               price_per_hour: float | None, energy_price: float | None) -> dict[str, Any]:
    """How long, how much energy and how many dollars ``tokens`` take at the measured rate on ``devices``."""
    hours = tokens / tokens_per_sec / 3600.0
    kwh = tokens * joules_per_token / J_PER_KWH if joules_per_token is not None else None
    return {
        "target_tokens": tokens,
        "tokens_per_sec": tokens_per_sec,
        "hours": hours,
        "days": hours / 24.0,
        "kwh": kwh,
        "usd": hours * price_per_hour * devices if price_per_hour is not None else None,
        "usd_energy": kwh * energy_price if kwh is not None and energy_price is not None else None,
        "devices": devices,
    }


def scaled(base: dict[str, Any], devices: int) -> dict[str, Any]:
    """The same budget on ``devices`` devices, assuming the rate scales linearly (energy and device-hours do not
    change: N devices for 1/N of the time)."""
    factor = devices / base["devices"]
    out = projection(base["target_tokens"], base["tokens_per_sec"] * factor, devices, None, None, None)
    out.update(kwh=base["kwh"], usd=base["usd"], usd_energy=base["usd_energy"], assumption=LINEAR_ASSUMPTION)
    return out


def add_costs(result: dict[str, Any], experiment: str, config: dict[str, Any]) -> None:
    """Put ``cost`` (when a price was given) and, for train, ``projection`` into one experiment's results."""
    if experiment not in ("inference", "train") or "error" in result:
        return
    devices = int(result.get("world_size", 1))
    rate = result.get("global_tokens_per_sec") if devices > 1 else (result.get("throughput") or {}).get("tokens_per_sec")
    jpt = (result.get("energy") or {}).get("joules_per_token")
    price, energy_price = config.get("price_per_hour"), config.get("energy_price")
    if price is not None or energy_price is not None:
        result["cost"] = cost(rate, devices, jpt, price, energy_price)
    if experiment == "train" and rate:
        tokens, basis = target_tokens(config)
        result["projection"] = projection(tokens, rate, devices, jpt, price, energy_price) | {"target_basis": basis}
        if config.get("project_devices") and int(config["project_devices"]) != devices:  # N measured: no assuming
            result["projection"]["scaled"] = scaled(result["projection"], int(config["project_devices"]))


# ------------------------------------------------------------------------------------------------ text
def fmt_duration(hours: float) -> str:
    """42 s, 17 min, 9.1 h, 127 days, 3.5 years: three significant figures in the largest unit that fits."""
    seconds = hours * 3600.0
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "min"), (48 * 3600, 3600, "h"), (730 * 86400, 86400, "days")):
        if seconds < limit:
            return f"{seconds / div:.3g} {unit}"
    return f"{seconds / (365.25 * 86400):.3g} years"


def fmt_usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.0f}" if x >= 100 else f"${x:.3g}"


def fmt_energy_per_token(j: float | None) -> str:
    if j is None:
        return "-"
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ")):
        if j >= factor or unit == "µJ":
            return f"{j / factor:.3g} {unit}"
    return "-"


def summary_lines(experiment: str, result: dict[str, Any]) -> list[str]:
    """Console and report lines for one experiment's energy, cost and projection (none when absent)."""
    lines = []
    energy = result.get("energy")
    if energy and "unavailable" in energy:
        lines.append(f"{experiment}: energy unavailable: {energy['unavailable']}")
    elif energy and "error" in energy:
        lines.append(f"{experiment}: energy measurement failed: {energy['error']}")
    elif energy:
        idle = "" if energy.get("idle_watts") is None else f" (idle {energy['idle_watts']:.0f} W)"
        kwh = "-" if energy.get("tokens_per_kwh") is None else fmt_tokens(energy["tokens_per_kwh"])
        lines.append(f"{experiment}: energy {fmt_energy_per_token(energy['joules_per_token'])}/token, {kwh} tokens/kWh;"
                     f" {energy['avg_watts']:.0f} W average{idle}, {energy['joules']:.4g} J over "
                     f"{energy['window_s']:.2f} s, {energy['window_steps']} steps ({energy['source']}, "
                     f"{energy['devices']} device{'s' if energy['devices'] != 1 else ''})")
    c = result.get("cost")
    if c:
        parts = []
        if c.get("price_per_hour") is not None:
            parts.append(f"{fmt_usd(c['usd_per_million_tokens'])} per million tokens at "
                         f"{fmt_usd(c['price_per_hour'])}/device-hour x {c['devices']}")
        if c.get("energy_price") is not None and c.get("usd_per_million_tokens_energy") is None:
            parts.append(f"energy cost unknown at {fmt_usd(c['energy_price'])}/kWh (no energy measured)")
        elif c.get("energy_price") is not None:
            parts.append(f"{fmt_usd(c['usd_per_million_tokens_energy'])} per million tokens of energy at "
                         f"{fmt_usd(c['energy_price'])}/kWh")
        lines.append(f"{experiment}: cost " + "; ".join(parts))
    p = result.get("projection")
    if p:
        lines.append(f"{experiment}: time to train {fmt_tokens(p['target_tokens'])} tokens ({p['target_basis']}): "
                     + _projection_text(p))
        if p.get("scaled"):
            lines.append(f"{experiment}: time to train, {p['scaled']['assumption']}: " + _projection_text(p["scaled"]))
    return lines


def _projection_text(p: dict[str, Any]) -> str:
    text = f"{fmt_duration(p['hours'])} on {p['devices']} device{'s' if p['devices'] != 1 else ''}"
    if p.get("kwh") is not None:
        text += f", {p['kwh']:.3g} kWh"
    if p.get("usd") is not None:
        text += f", {fmt_usd(p['usd'])}"
    if p.get("usd_energy") is not None:
        text += f" ({fmt_usd(p['usd_energy'])} of energy)"
    return text


def projection_line(names: list[str], runs: list[dict[str, Any]]) -> str | None:
    """'10B tokens: cpu 127 days, gpu 9.1 h' across runs (each run's own budget where they differ)."""
    found = [(n, r.get("experiments", {}).get("train", {}).get("projection")) for n, r in zip(names, runs)]
    found = [(n, p) for n, p in found if p]
    if not found:
        return None
    budgets = {p["target_tokens"] for _, p in found}
    if len(budgets) == 1:
        line = f"time to train {fmt_tokens(budgets.pop())} tokens: " + ", ".join(
            f"{n} {fmt_duration(p['hours'])}" for n, p in found)
    else:
        line = "time to train: " + ", ".join(
            f"{n} {fmt_duration(p['hours'])} ({fmt_tokens(p['target_tokens'])} tokens)" for n, p in found)
    scaled_runs = [(n, p["scaled"]) for n, p in found if p.get("scaled")]
    if scaled_runs:
        line += "; on " + ", ".join(f"{s['devices']} devices: {n} {fmt_duration(s['hours'])}" for n, s in scaled_runs)
        line += f" ({LINEAR_ASSUMPTION})"
    return line


def assumed_vs_measured(runs: list[dict[str, Any]]) -> list[str]:
    """Where one run projects N devices by assumption (``--project-devices N``) and another measured N processes (a
    ``--sweep devices=1,N``): both times side by side, and the scaling the assumption took for granted."""
    measured = {}
    for r in runs:
        train = r.get("experiments", {}).get("train", {})
        if train.get("world_size", 1) > 1 and train.get("projection"):
            measured[train["world_size"]] = train["projection"]
    lines = []
    for r in runs:
        p = r.get("experiments", {}).get("train", {}).get("projection") or {}
        s = p.get("scaled")
        m = measured.get((s or {}).get("devices"))
        if not s or not m or p.get("devices") != 1 or s["target_tokens"] != m["target_tokens"]:
            continue
        efficiency = 100.0 * m["tokens_per_sec"] / (s["devices"] * p["tokens_per_sec"])
        lines.append(f"time to train {fmt_tokens(s['target_tokens'])} tokens on {s['devices']} devices: assumed "
                     f"{fmt_duration(s['hours'])} ({LINEAR_ASSUMPTION}, from 1 process); measured with {s['devices']} "
                     f"processes {fmt_duration(m['hours'])} (the job's rate over its slowest rank): scaling "
                     f"efficiency {efficiency:.0f}%")
    return lines


def is_finite_positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0
