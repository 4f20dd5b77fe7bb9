"""Display names of label values in Russian and English — what managers see on tags, fields and reports.

The engine stores short stable codes (``abc=A``, ``rfm=champions``, ``lifecycle=lapsed``); this module is
the one place that turns them into words, so a rename never changes stored state or history.

Labels contract (keys of ``segment_state.labels``; a key is absent when it does not apply):

============  ==========================================================================================
key           values
============  ==========================================================================================
abc           ``A`` ``B`` ``C``; ``N`` = no revenue in the ABC window
xyz           ``X`` ``Y`` ``Z``; ``new`` too little history, ``once`` one purchase ever,
              ``none`` no purchase in the XYZ periods (absent for leads)
abc_xyz       ``AX`` … ``CZ``; ``A-new``, ``B-once``, ``C-none`` …; ``N`` without revenue (absent for leads)
rfm           a segment key of the RFM map (default map: champions, loyal_customers, potential_loyalists,
              new_customers, promising, need_attention, about_to_sleep, at_risk, cant_lose, hibernating,
              lost); ``none`` = no purchase in the RFM window (absent for leads); ``other`` = no rule matched
rfm_score     three digits R F M, e.g. ``545`` (only when scored)
lifecycle     ``lead`` ``new`` ``active`` ``lapsed`` ``lost`` ``returned``
readiness     ``cold`` ``warm`` ``hot`` (leads only)
churn_flag    ``yes`` (absent otherwise): silent longer than k × usual cycle
churn_risk    ``low`` ``medium`` ``high`` (absent for leads)
vip           ``yes`` (absent otherwise)
custom:NAME   ``yes`` for each matching admin rule segment NAME (absent otherwise)
============  ==========================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

Language = Literal["ru", "en"]

#: The default R×F map (G. Martin 2018, a complete partition of the 25 cells), first match wins.
DEFAULT_RFM_MAP: tuple[dict[str, Any], ...] = (
    {"name": "champions", "r": "5", "f": "4-5"},
    {"name": "loyal_customers", "r": "3-4", "f": "4-5"},
    {"name": "potential_loyalists", "r": "4-5", "f": "2-3"},
    {"name": "new_customers", "r": "5", "f": "1"},
    {"name": "promising", "r": "4", "f": "1"},
    {"name": "need_attention", "r": "3", "f": "3"},
    {"name": "about_to_sleep", "r": "3", "f": "1-2"},
    {"name": "cant_lose", "r": "1-2", "f": "5"},
    {"name": "at_risk", "r": "1-2", "f": "3-4"},
    {"name": "hibernating", "r": "1-2", "f": "1-2"},
)
#: With ``split_lost``: the R=1, F=1 corner of "hibernating" becomes "lost" (the Putler/SQL 11th segment).
LOST_RULE: dict[str, Any] = {"name": "lost", "r": "1", "f": "1"}

_NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "abc": {
        "A": ("A — ключевые", "A — key"),
        "B": ("B — средние", "B — medium"),
        "C": ("C — малые", "C — small"),
        "N": ("Без выручки", "No revenue"),
    },
    "xyz": {
        "X": ("X — стабильные", "X — steady"),
        "Y": ("Y — колеблющиеся", "Y — fluctuating"),
        "Z": ("Z — нерегулярные", "Z — irregular"),
        "new": ("Мало истории", "Too new"),
        "once": ("Разовая покупка", "One-time"),
        "none": ("Нет покупок в периоде", "No purchases in period"),
    },
    "rfm": {
        "champions": ("Чемпионы", "Champions"),
        "loyal_customers": ("Лояльные", "Loyal customers"),
        "potential_loyalists": ("Потенциально лояльные", "Potential loyalists"),
        "new_customers": ("Новые", "New customers"),
        "promising": ("Перспективные", "Promising"),
        "need_attention": ("Требуют внимания", "Need attention"),
        "about_to_sleep": ("Засыпающие", "About to sleep"),
        "at_risk": ("В зоне риска", "At risk"),
        "cant_lose": ("Нельзя потерять", "Can't lose them"),
        "hibernating": ("Спящие", "Hibernating"),
        "lost": ("Потерянные", "Lost"),
        "other": ("Прочие", "Other"),
        "none": ("Нет покупок в окне", "No purchases in window"),
    },
    "lifecycle": {
        "lead": ("Лид", "Lead"),
        "new": ("Новый", "New"),
        "active": ("Активный", "Active"),
        "lapsed": ("Уходящий", "Lapsed"),
        "lost": ("Потерянный", "Lost"),
        "returned": ("Вернувшийся", "Returned"),
    },
    "readiness": {
        "cold": ("Холодный", "Cold"),
        "warm": ("Тёплый", "Warm"),
        "hot": ("Горячий", "Hot"),
    },
    "churn_risk": {
        "low": ("Риск ухода низкий", "Churn risk low"),
        "medium": ("Риск ухода средний", "Churn risk medium"),
        "high": ("Риск ухода высокий", "Churn risk high"),
    },
    "churn_flag": {"yes": ("Пора реактивировать", "Due for reactivation")},
    "vip": {"yes": ("VIP", "VIP")},
}

LABEL_TITLES: dict[str, tuple[str, str]] = {
    "abc": ("ABC", "ABC"),
    "xyz": ("XYZ", "XYZ"),
    "abc_xyz": ("ABC×XYZ", "ABC×XYZ"),
    "rfm": ("RFM-сегмент", "RFM segment"),
    "rfm_score": ("RFM-балл", "RFM score"),
    "lifecycle": ("Жизненный цикл", "Lifecycle"),
    "readiness": ("Готовность лида", "Lead readiness"),
    "churn_flag": ("Реактивация", "Reactivation"),
    "churn_risk": ("Риск ухода", "Churn risk"),
    "vip": ("VIP", "VIP"),
}


def _pick(pair: tuple[str, str], language: Language) -> str:
    return pair[0] if language == "ru" else pair[1]


def display(
    label: str,
    value: str | None,
    language: Language = "ru",
    *,
    titles: Mapping[str, Mapping[str, tuple[str | None, str | None]]] | None = None,
) -> str | None:
    """Human name of ``value`` of ``label`` (``None`` for an absent label).

    ``titles`` carries the admin's own names from the rules file: label → value → (title_ru, title_en), e.g.
    an RFM map's ``title_ru`` or a custom segment's; see :func:`titles_from_config`. Unknown codes are shown as
    they are, so a new value is never hidden.
    """
    if value is None:
        return None
    if titles and value in titles.get(label, {}):
        ru, en = titles[label][value]
        chosen = ru if language == "ru" else en
        if chosen:
            return chosen
    if label == "abc_xyz":
        abc, _, xyz = value.partition("-")
        if not xyz and len(value) == 2 and value[1] in "XYZ":
            return value
        if value == "N":
            return display("abc", "N", language)
        return f"{abc}, {display('xyz', xyz, language)}".replace(", None", "")
    if label == "rfm_score":
        return value
    if label.startswith("custom:"):
        return label.removeprefix("custom:")
    pair = _NAMES.get(label, {}).get(value)
    return _pick(pair, language) if pair else value


def title(label: str, language: Language = "ru") -> str:
    """Human name of a label key itself (for report columns and the CLI)."""
    if label.startswith("custom:"):
        return label.removeprefix("custom:")
    pair = LABEL_TITLES.get(label)
    return _pick(pair, language) if pair else label


def titles_from_config(segments: Any) -> dict[str, dict[str, tuple[str | None, str | None]]]:
    """The admin's names from a :class:`~segsync.config.segments.SegmentsConfig` for :func:`display`."""
    out: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    rfm_map = segments.rfm.map
    if not isinstance(rfm_map, str):
        out["rfm"] = {rule.name: (rule.title_ru, rule.title_en) for rule in rfm_map}
    for rule in segments.custom:
        out[f"custom:{rule.name}"] = {"yes": (rule.title_ru or rule.name, rule.title_en or rule.name)}
    if segments.vip is not None and (segments.vip.title_ru or segments.vip.title_en):
        out["vip"] = {"yes": (segments.vip.title_ru, segments.vip.title_en)}
    return out


def rfm_rules(rfm_map: str | Sequence[Any], split_lost: bool) -> list[dict[str, Any]]:
    """The RFM map as data: dicts with name, r, f, m (score specs); the default map or the admin's rules."""
    if isinstance(rfm_map, str):
        rules = list(DEFAULT_RFM_MAP)
        if split_lost:
            rules.insert(len(rules) - 1, LOST_RULE)
        return rules
    return [{"name": rule.name, "r": rule.r, "f": rule.f, "m": rule.m} for rule in rfm_map]
