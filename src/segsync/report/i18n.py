"""Words and number formats of the report in Russian and English.

Label keys and values are named by :mod:`segsync.segments.names` — the words managers see on the CRM's tags
and fields, including the admin's own titles from the rules file — so the report never renames a segment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from segsync.segments import names

NBSP = "\u00a0"
NNBSP = "\u202f"

_TEXT: dict[str, tuple[str, str]] = {
    "title": ("Отчёт по клиентской базе", "Customer base report"),
    "generated": ("Сформирован", "Generated"),
    "data_as_of": ("данные на", "data as of"),
    "source": ("Источник", "Source"),
    "contents": ("Содержание", "Contents"),
    "no_state": (
        "Сегменты ещё не рассчитаны: запустите «segsync compute».",
        "Segments have not been computed yet: run “segsync compute”.",
    ),
    "not_synced": ("ещё не синхронизирован", "not synced yet"),
    # KPIs
    "kpi_customers": ("Клиентов в анализе", "Customers analysed"),
    "kpi_buyers": ("Покупали за 12 мес.", "Bought in 12 months"),
    "kpi_revenue": ("Выручка за 12 мес.", "Revenue, 12 months"),
    "kpi_a_share": ("Доля клиентов A в выручке", "Class A share of revenue"),
    "kpi_risk": ("Выручка под риском ухода", "Revenue at risk of churn"),
    "kpi_tasks": ("Задач создано за неделю", "Tasks created this week"),
    # ABC×XYZ
    "sec_matrix": ("Матрица ABC×XYZ", "ABC×XYZ matrix"),
    "matrix_note": (
        "ABC — вклад в выручку за {days} дн., XYZ — стабильность покупок. В ячейке: клиенты и выручка; "
        "цвет — доля выручки.",
        "ABC: contribution to revenue over {days} days; XYZ: how steady purchases are. Each cell: customers and "
        "revenue; colour: share of revenue.",
    ),
    "matrix_no_revenue": ("Без выручки в окне ABC: {n}.", "No revenue in the ABC window: {n}."),
    "axis_abc": ("ABC ↓", "ABC ↓"),
    "axis_xyz": ("XYZ — стабильность покупок →", "XYZ — purchase stability →"),
    "customers_forms": ("клиент|клиента|клиентов", "customer|customers|customers"),
    # RFM
    "sec_rfm": ("RFM-сегменты", "RFM segments"),
    "rfm_customers": ("Клиенты по RFM-сегментам", "Customers per RFM segment"),
    "rfm_revenue": ("Выручка по RFM-сегментам за 12 мес.", "Revenue per RFM segment, 12 months"),
    "rule_segments": ("Правила и флаги", "Rule segments and flags"),
    # transitions
    "sec_transitions": ("Переходы между сегментами", "Segment transitions"),
    "transitions_note": (
        "Последний расчёт — {last}; «за неделю» — 7 дней до него.",
        "Last computation: {last}; “week”: the 7 days up to it.",
    ),
    "first_run": (
        "Это первый расчёт: сравнивать пока не с чем, все клиенты получили сегменты впервые.",
        "This is the first computation: there is nothing to compare with yet, every customer got segments for the "
        "first time.",
    ),
    "no_transitions": ("Переходов нет.", "No transitions."),
    "net_change": ("Чистое изменение сегментов за неделю", "Net change of segments over the week"),
    "axis_net": ("Изменение, клиентов", "Change, customers"),
    "col_label": ("Признак", "Label"),
    "col_from": ("Было", "From"),
    "col_to": ("Стало", "To"),
    "col_last_run": ("За последний расчёт", "Last run"),
    "col_week": ("За неделю", "Week"),
    "appeared": ("(нет)", "(none)"),
    # cohorts
    "sec_cohorts": ("Удержание по когортам", "Cohort retention"),
    "cohorts_note": (
        "Когорта — месяц первой покупки. Ячейка — доля когорты, купившая через N месяцев.",
        "A cohort is the month of the first purchase. A cell is the share of the cohort buying N months later.",
    ),
    "axis_cohort": ("Когорта · клиентов", "Cohort · customers"),
    "axis_period": ("Месяцев после первой покупки", "Months after the first purchase"),
    "no_purchases": ("Покупок пока нет.", "No purchases yet."),
    # churn
    "sec_churn": ("Риск ухода: кого вернуть в первую очередь", "Churn risk: whom to win back first"),
    "churn_note_model": (
        "Отсортировано по выручке под риском = выручка за 12 мес. × (1 − P(жив)); показаны первые {n}.",
        "Sorted by revenue at risk = 12-month revenue × (1 − P(alive)); top {n} shown.",
    ),
    "churn_note_rule": (
        "Модель BG/NBD не обучена (мало повторных покупок): показаны клиенты, которых правило молчания отметило "
        "к реактивации, по выручке за 12 мес.; первые {n}.",
        "The BG/NBD model is not fitted (too few repeat buyers): listed are customers the silence rule flags for "
        "reactivation, by 12-month revenue; top {n}.",
    ),
    "no_churn": ("Клиентов под риском нет.", "No customers at risk."),
    "col_customer": ("Клиент", "Customer"),
    "col_manager": ("Менеджер", "Manager"),
    "col_segment": ("Сегмент", "Segment"),
    "col_revenue": ("Выручка 12 мес.", "Revenue 12 mo."),
    "col_p_alive": ("P(жив)", "P(alive)"),
    "col_at_risk": ("Под риском", "At risk"),
    "col_silent": ("Без покупки, дн.", "No purchase, days"),
    "col_touch": ("Без контакта, дн.", "No contact, days"),
    # tasks
    "sec_tasks": ("Задачи менеджерам", "Tasks for managers"),
    "tasks_chart": ("Создано задач по менеджерам", "Tasks created per manager"),
    "axis_tasks": ("Задачи, шт.", "Tasks"),
    "series_total": ("всего", "total"),
    "series_week": ("за неделю", "this week"),
    "col_created": ("Создано", "Created"),
    "col_open": ("В очереди", "Queued"),
    "col_failed": ("Ошибки", "Failed"),
    "no_tasks": ("segsync ещё не создавал задач.", "segsync has not created tasks yet."),
    "unassigned": ("без ответственного", "unassigned"),
    # quality
    "sec_quality": ("Качество данных", "Data quality"),
    "q_duplicates": ("Вероятные дубли", "Likely duplicates"),
    "q_duplicates_value": ("групп, в них {customers} записей", "groups holding {customers} records"),
    "q_unreachable": ("Не с кем связаться", "Unreachable"),
    "q_unreachable_note": (
        "без телефона и e-mail (у компании — и у её контактов)",
        "no phone or e-mail (for a company: nor on its contacts)",
    ),
    "q_chart": ("Группы дублей по признаку совпадения", "Duplicate groups by what matches"),
    "axis_groups": ("Группы, шт.", "Groups"),
    "match_phone": ("телефон", "phone"),
    "match_email": ("e-mail", "e-mail"),
    "match_name_company": ("название / ФИО", "name"),
    "col_match": ("Совпадает", "Match"),
    "col_records": ("Записи", "Records"),
    "top_groups": ("Крупнейшие группы дублей", "Largest duplicate groups"),
    "unreachable_by_manager": ("Недоступные клиенты по менеджерам", "Unreachable customers per manager"),
    "no_duplicates": ("Дублей не найдено.", "No duplicates found."),
    # health
    "sec_health": ("Состояние синхронизации", "Sync health"),
    "col_state": ("Состояние", "State"),
    "col_last_pull": ("Загрузка", "Pull"),
    "col_last_compute": ("Расчёт", "Compute"),
    "col_last_push": ("Запись в CRM", "Push"),
    "col_runs_week": ("Запуски 7 дн.: ок / сбой", "Runs 7 days: ok / failed"),
    "col_cursor": ("Последние данные из CRM", "Last data from the CRM"),
    "col_quarantine": ("В карантине", "Quarantined"),
    "state_ok": ("в порядке", "ok"),
    "state_attention": ("требует внимания", "needs attention"),
    "state_stopped": ("остановлен", "stopped"),
    "never": ("не было", "never"),
    "quarantine_reasons": ("Частые причины карантина", "Common quarantine reasons"),
    "col_entity": ("Сущность", "Entity"),
    "col_reason": ("Причина", "Reason"),
    "col_count": ("Записей", "Records"),
    # management view
    "sec_monthly": ("Динамика клиентской базы по месяцам", "Customer base month by month"),
    "monthly_note": (
        "Привлечённые — первая покупка в месяце; потерянные — нет покупок {n} мес.; вернувшиеся — купили снова "
        "после такого перерыва. Текущий месяц неполный.",
        "Gained: first purchase in the month; lost: no purchase for {n} months; returned: bought again after such "
        "a gap. The current month is incomplete.",
    ),
    "flow_chart": ("Привлечённые, вернувшиеся и потерянные клиенты", "Customers gained, returned and lost"),
    "axis_customers": ("Клиенты, чел.", "Customers"),
    "axis_month": ("Месяц", "Month"),
    "gained": ("привлечены", "gained"),
    "returned": ("вернулись", "returned"),
    "lost": ("потеряны", "lost"),
    "active": ("активная база", "active base"),
    "revenue_chart": ("Выручка от новых и существующих клиентов", "Revenue from new vs existing customers"),
    "revenue_new": ("новые", "new"),
    "revenue_existing": ("существующие", "existing"),
    "col_month": ("Месяц", "Month"),
    "col_gained": ("Привлечено", "Gained"),
    "col_returned": ("Вернулось", "Returned"),
    "col_lost": ("Потеряно", "Lost"),
    "col_active": ("Активная база", "Active base"),
    "col_rev_new": ("Выручка: новые", "Revenue: new"),
    "col_rev_existing": ("Выручка: существующие", "Revenue: existing"),
    "axis_revenue": ("Выручка", "Revenue"),
    "sort_hint": ("Нажмите на заголовок столбца, чтобы отсортировать.", "Click a column header to sort."),
    "footer": (
        "segsync · отчёт построен из локального хранилища, без сетевых запросов",
        "segsync · built from the local store, no network requests",
    ),
}

_MONTHS = (
    ("янв", "Jan"),
    ("фев", "Feb"),
    ("мар", "Mar"),
    ("апр", "Apr"),
    ("май", "May"),
    ("июн", "Jun"),
    ("июл", "Jul"),
    ("авг", "Aug"),
    ("сен", "Sep"),
    ("окт", "Oct"),
    ("ноя", "Nov"),
    ("дек", "Dec"),
)
_CURRENCY_SIGNS = {"RUB": "₽", "RUR": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "UAH": "₴", "BYN": "Br", "CNY": "¥"}


Titles = Mapping[str, Mapping[str, tuple[str | None, str | None]]]


@dataclass
class Texts:
    """Everything language-dependent, bound to one language and time zone."""

    lang: str
    timezone: str
    titles: Titles = field(default_factory=dict)  # the admin's names: see names.titles_from_config

    def _pick(self, pair: tuple[str, str]) -> str:
        return pair[0] if self.lang == "ru" else pair[1]

    @property
    def _language(self) -> names.Language:
        return "ru" if self.lang == "ru" else "en"

    def t(self, key: str, **values: object) -> str:
        text = self._pick(_TEXT[key])
        return text.format(**values) if values else text

    def label(self, label: str) -> str:
        """The name of a label key (``rfm`` → "RFM-сегмент")."""
        return names.title(label, self._language)

    def value(self, label: str, value: str | None) -> str:
        """The name of a label's value (``rfm=champions`` → "Чемпионы"); for a flag or a rule segment, its
        ``yes`` is the segment's name. ``None``: the label was absent; ``""``: a customer without it."""
        if value is None:
            return self.t("appeared")
        if value == "":
            return "—"
        return names.display(label, value, self._language, titles=self.titles) or value

    def count(self, n: int, forms_key: str = "customers_forms") -> str:
        """``5 клиентов`` / ``1 customer``: a number with the noun in the right plural form."""
        one, few, many = self.t(forms_key).split("|")
        if self.lang == "ru":
            tail, tens = n % 10, n % 100
            form = one if tail == 1 and tens != 11 else few if 2 <= tail <= 4 and not 12 <= tens <= 14 else many
        else:
            form = one if n == 1 else many
        return f"{self.integer(n)} {form}"

    # numbers ---------------------------------------------------------------------------------------------
    def integer(self, n: float | int | None) -> str:
        if n is None:
            return "—"
        text = f"{round(n):,}"
        return text.replace(",", NBSP) if self.lang == "ru" else text

    def decimal(self, x: float | None, places: int = 2) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "—"
        text = f"{x:,.{places}f}"
        if self.lang == "ru":
            text = text.replace(",", NBSP).replace(".", ",")
        return text

    def percent(self, share: float | None, places: int = 0) -> str:
        if share is None:
            return "—"
        number = self.decimal(share * 100, places)
        return f"{number}{NBSP}%" if self.lang == "ru" else f"{number}%"

    def sign(self, currency: str | None) -> str:
        if not currency:
            return "у.е." if self.lang == "ru" else "units"
        return _CURRENCY_SIGNS.get(currency.upper(), currency.upper())

    def money(self, x: float | None, currency: str | None) -> str:
        if x is None:
            return "—"
        return f"{self.integer(x)}{NBSP}{self.sign(currency)}"

    def compact(self, x: float) -> str:
        """Short axis numbers: 1,2 млн / 1.2M, 350 тыс. / 350K."""
        size = abs(x)
        steps = ((1e9, ("млрд", "B")), (1e6, ("млн", "M")), (1e3, ("тыс.", "K")))
        for limit, units in steps:
            if size >= limit:
                value = x / limit
                places = 0 if value == round(value) or abs(value) >= 100 else 1
                number = self.decimal(value, places)
                return f"{number}{NBSP}{units[0]}" if self.lang == "ru" else f"{number}{units[1]}"
        return self.decimal(x, 0 if x == round(x) else 1)

    def compact_money(self, x: float, currency: str | None) -> str:
        return f"{self.compact(x)}{NBSP}{self.sign(currency)}"

    # time ------------------------------------------------------------------------------------------------
    def moment(self, when: datetime | None) -> str:
        if when is None:
            return self.t("never")
        local = when.astimezone(ZoneInfo(self.timezone))
        return local.strftime("%d.%m.%Y %H:%M") if self.lang == "ru" else local.strftime("%Y-%m-%d %H:%M")

    def month(self, label: str) -> str:
        """``YYYY-MM`` → ``май 24`` / ``May 24``."""
        year, month = label.split("-")
        return f"{self._pick(_MONTHS[int(month) - 1])} {year[2:]}"

    def match(self, match: str) -> str:
        return self.t(f"match_{match}") if f"match_{match}" in _TEXT else match
