"""A suggested next step for the manager, from the customer's segment (overridable per action)."""

from __future__ import annotations

from typing import Any

_BY_SEGMENT = {
    "champions": ("поблагодарить за сотрудничество и предложить новинку или программу лояльности",
                  "thank them and offer something new or the loyalty programme"),
    "loyal": ("предложить сопутствующие товары или расширение заказа", "offer related products or a larger order"),
    "potential_loyalists": ("предложить регулярные поставки на удобных условиях",
                            "offer regular deliveries on convenient terms"),
    "new": ("узнать впечатления от первой покупки и предложить сопутствующий товар",
            "ask how the first purchase went and offer a related product"),
    "recent": ("узнать впечатления от покупки и предложить сопутствующий товар",
               "ask how the purchase went and offer a related product"),
    "promising": ("рассказать об ассортименте и предложить пробный заказ",
                  "present the range and suggest a trial order"),
    "need_attention": ("напомнить о себе и предложить персональное условие", "get in touch with a personal offer"),
    "about_to_sleep": ("позвонить и уточнить планы закупок", "call and ask about upcoming purchases"),
    "at_risk": ("позвонить, выяснить причину паузы и предложить персональное условие",
                "call, find out why they paused and make a personal offer"),
    "cant_lose": ("связаться лично, выяснить причину ухода и предложить индивидуальные условия",
                  "reach out personally, find out why they left and offer individual terms"),
    "hibernating": ("напомнить о себе актуальным предложением", "remind them of you with a current offer"),
    "lost": ("попробовать вернуть специальным предложением", "try to win them back with a special offer"),
}  # fmt: skip
_DEFAULT = ("связаться с клиентом и уточнить текущую потребность", "contact the customer and ask about current needs")


def _norm(code: Any) -> str:
    return str(code).strip().lower().replace("'", "").replace("’", "").replace(" ", "_").replace("-", "_")


def suggest(labels: dict[str, Any], language: str) -> str:
    """By RFM segment first, then lifecycle; a churn flag alone means "at risk"."""
    index = 0 if language == "ru" else 1
    for label in ("rfm", "lifecycle"):
        code = labels.get(label)
        if code is not None and _norm(code) in _BY_SEGMENT:
            return _BY_SEGMENT[_norm(code)][index]
    if str(labels.get("churn_flag", "")).lower() in ("1", "true", "yes"):
        return _BY_SEGMENT["at_risk"][index]
    return _DEFAULT[index]
