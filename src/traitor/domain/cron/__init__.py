"""The cron dialect of SPEC §1: parsing, next-fire search and English descriptions.

>>> from zoneinfo import ZoneInfo
>>> expr = parse_cron("0 0 8 ? * MON")          # second minute hour dom month dow
>>> expr.next_fire(0, ZoneInfo("UTC"))           # first Monday 08:00:00 after the epoch
374400000
>>> describe_cron("0 0 8 ? * MON")
'At 08:00:00 on Monday'

See :mod:`traitor.domain.cron.parser` for the grammar decisions and
:mod:`traitor.domain.cron.schedule` for the daylight-saving rules and the
epoch anchoring of ``@every``.
"""

from traitor.domain.cron.describe import describe_cron
from traitor.domain.cron.parser import CronError, parse_cron
from traitor.domain.cron.schedule import CronExpression

__all__ = ["CronError", "CronExpression", "describe_cron", "parse_cron"]
