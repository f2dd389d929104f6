"""The development channel: logs that a message went out (ids and a masked address only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ...domain.model import LOG_CHANNEL, Message, Receipt
from .base import utcnow

log = logging.getLogger("zhumeng.notify.channels")


class LogChannel:
    """Development channel: logs that a message went out. Ids and a masked address only."""

    name = LOG_CHANNEL

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock

    async def send(self, message: Message) -> Receipt:
        log.info(
            "notification delivery=%s channel=%s recipient=%s role=%s address=%s locale=%s",
            message.delivery_id,
            self.name,
            message.recipient.id,
            message.recipient.role,
            message.masked_address,
            message.locale,
        )
        return Receipt(self.name, f"log:{message.delivery_id}", self._clock())
