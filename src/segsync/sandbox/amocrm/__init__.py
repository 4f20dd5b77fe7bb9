"""amoCRM / Kommo API v4 emulator: one :class:`AmoAccount` per account, served by :func:`build_app`.

Built to ``shared/api/amocrm.md``; see each module's docstring for the documented behaviour it
follows and the knobs (:class:`AmoOptions`) where the docs disagree.
"""

from segsync.sandbox.amocrm.account import AmoAccount
from segsync.sandbox.amocrm.app import build_app
from segsync.sandbox.amocrm.options import AmoOptions

__all__ = ["AmoAccount", "AmoOptions", "build_app"]
