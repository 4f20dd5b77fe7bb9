"""Why a customer has each label: one sentence per label from the stored features and the rules.

Pure: takes the labels and features saved in ``segment_state`` and the current ``segments:`` config (the
thresholds that decided), so ``segsync explain`` and the report can show the arithmetic behind a label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segsync.config.segments import SegmentsConfig, parse_scores
from segsync.segments.names import rfm_rules


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}".replace(",", " ")
    return f"{round(float(value)):,}".replace(",", " ")


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _days(value: Any) -> str:
    return "—" if value is None else f"{_num(value)} d"


def _window(value: Any) -> str:
    return "all time" if value == "all" else f"{int(value.total_seconds() // 86400)}d"


def reasons(labels: Mapping[str, str], features: Mapping[str, Any], config: SegmentsConfig) -> dict[str, str]:
    """label key → explanation (for every label present, plus the reason a label is absent where useful)."""
    f = features
    out: dict[str, str] = {}
    abc = labels.get("abc")
    if abc == "N":
        out["abc"] = f"N: no revenue in the ABC window ({_window(config.abc.window)})"
    elif abc:
        a, b = config.abc.shares.A, config.abc.shares.B
        cum = f.get("abc_cum_share")
        rule = f"< {_pct(a)} → A" if abc == "A" else (f"< {_pct(b)} → B" if abc == "B" else f"≥ {_pct(b)} → C")
        out["abc"] = (
            f"{abc}: revenue {_num(f.get('revenue_window'))} in {_window(config.abc.window)} = "
            f"{_pct(f.get('abc_share'))} of the total; customers ranked above hold {_pct(cum)} {rule}"
        )
    xyz = labels.get("xyz")
    if xyz in ("X", "Y", "Z"):
        periods = f.get("xyz_periods")
        if (config.xyz.variant == "frequency") or (config.xyz.variant == "auto" and f.get("b2b")):
            out["xyz"] = (
                f"{xyz}: bought in {_pct(f.get('xyz_active_share'))} of the last {periods} {config.xyz.period}s "
                f"(X ≥ {_pct(config.xyz.active.X)}, Y ≥ {_pct(config.xyz.active.Y)})"
            )
        else:
            out["xyz"] = (
                f"{xyz}: coefficient of variation of {config.xyz.period}ly revenue over {periods} periods = "
                f"{_pct(f.get('xyz_cv'))} (X ≤ {_pct(config.xyz.cv.X)}, Y ≤ {_pct(config.xyz.cv.Y)})"
            )
    elif xyz == "once":
        out["xyz"] = "once: a single purchase ever, regularity is undefined"
    elif xyz == "new":
        out["xyz"] = (
            f"new: {f.get('xyz_periods')} complete {config.xyz.period}s since the first purchase "
            f"(< {config.xyz.min_periods} needed)"
        )
    elif xyz == "none":
        out["xyz"] = f"none: no purchase in the last {config.xyz.periods} complete {config.xyz.period}s"
    if labels.get("abc_xyz"):
        out["abc_xyz"] = f"{labels['abc_xyz']}: ABC class {abc} with XYZ class {xyz}"
    rfm = labels.get("rfm")
    if rfm == "none":
        out["rfm"] = f"none: no purchase in the RFM window ({_window(config.rfm.window)})"
    elif rfm:
        rule = next((r for r in rfm_rules(config.rfm.map, config.rfm.split_lost) if r["name"] == rfm), None)
        where = ""
        if rule is not None:
            dims = [f"R {_scores(rule['r'])}", f"F {_scores(rule['f'])}"]
            if rule.get("m") is not None:
                dims.append(f"M {_scores(rule['m'])}")
            where = f" → map rule {rfm!r} ({', '.join(dims)})"
        out["rfm"] = (
            f"{rfm}: R={f.get('rfm_r')} (last purchase {_days(f.get('recency_days'))} ago), "
            f"F={f.get('rfm_f')}, M={f.get('rfm_m')} within {_window(config.rfm.window)}{where}"
        )
    lc = labels.get("lifecycle")
    cycle = f.get("cycle_days")
    source = f.get("cycle_source")
    cfg = config.lifecycle
    recency = f.get("recency_days")
    if lc == "lead":
        out["lifecycle"] = "lead: no purchase yet"
    elif lc == "new":
        out["lifecycle"] = f"new: first purchase {_days(f.get('age_days'))} ago (≤ {_window(cfg.new_within)})"
    elif lc in ("lost", "lapsed"):
        factor = cfg.lost_factor if lc == "lost" else cfg.lapsed_factor
        out["lifecycle"] = (
            f"{lc}: silent {_days(recency)} > {factor} × usual cycle {_days(cycle)} (cycle from: {source})"
        )
    elif lc == "returned":
        out["lifecycle"] = (
            f"returned: bought {_days(recency)} ago after a pause longer than {cfg.lapsed_factor} × cycle "
            f"{_days(cycle)}"
        )
    elif lc == "active":
        out["lifecycle"] = f"active: silent {_days(recency)} ≤ {cfg.lapsed_factor} × usual cycle {_days(cycle)}"
    if labels.get("readiness"):
        out["readiness"] = (
            f"{labels['readiness']}: warmest of {f.get('open_deals')} open deal(s) by its stage "
            f"({'stage map' if cfg.readiness else cfg.readiness_unmapped})"
        )
    churn = config.churn
    if labels.get("churn_flag") == "yes":
        out["churn_flag"] = f"silent {_days(recency)} > {churn.factor} × usual cycle {_days(cycle)} ({source})"
    elif lc not in (None, "lead") and config.churn.enabled:
        out["churn_flag"] = f"not flagged: silent {_days(recency)} ≤ {churn.factor} × cycle {_days(cycle)}"
    risk = labels.get("churn_risk")
    if risk:
        p_alive = f.get("p_alive")
        if p_alive is not None and not (churn.model == "bgnbd" and (f.get("purchase_days") or 0) <= 1):
            out["churn_risk"] = (
                f"{risk}: P(alive) = {p_alive:.3f} by {churn.model} (high < {churn.at_risk_below}, "
                f"medium < {churn.medium_below}); P(no purchase in {_window(churn.horizon)}) = "
                f"{_num(f.get('p_no_purchase'), 3)}"
            )
        else:
            out["churn_risk"] = (
                f"{risk}: by the cycle rule (model not used): silent {_days(recency)} vs cycle {_days(cycle)} "
                f"(high > {churn.factor} × cycle, medium > 1 × cycle)"
            )
    if labels.get("vip") == "yes" and config.vip is not None:
        out["vip"] = f"matches: {config.vip.where}"
    for rule in config.custom:
        if labels.get(f"custom:{rule.name}") == "yes":
            out[f"custom:{rule.name}"] = f"matches: {rule.where}"
    return out


def _scores(spec: Any) -> str:
    values = sorted(parse_scores(spec))
    return (
        f"{values[0]}–{values[-1]}"
        if len(values) > 1 and values == list(range(values[0], values[-1] + 1))
        else (",".join(map(str, values)))
    )
