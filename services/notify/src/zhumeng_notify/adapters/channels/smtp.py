"""Email over SMTP (stdlib smtplib in a worker thread)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from ...domain.model import EMAIL_CHANNEL, Message, Receipt, message_id
from .base import utcnow

log = logging.getLogger("zhumeng.notify.channels")


class SmtpChannel:
    """Plain-text email through an SMTP relay (stdlib smtplib, in a worker thread).

    The Message-ID is derived from the delivery id, so a message resent after a crash
    mid-send carries the same id and mail clients drop the duplicate.
    """

    name = EMAIL_CHANNEL

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._timeout = timeout_s
        self._clock = clock

    def build(self, message: Message) -> EmailMessage:
        if not message.address:
            raise ValueError(f"delivery {message.delivery_id} has no email address")
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.address
        mail["Subject"] = message.rendered.subject
        mail["Date"] = format_datetime(self._clock())
        mail["Message-ID"] = message_id(message.delivery_id)
        mail["Content-Language"] = message.locale
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.rendered.body, charset="utf-8")
        return mail

    def _send_sync(self, mail: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            smtp.send_message(mail)

    async def send(self, message: Message) -> Receipt:
        mail = self.build(message)
        await asyncio.to_thread(self._send_sync, mail)
        log.info(
            "notification delivery=%s channel=%s recipient=%s address=%s",
            message.delivery_id,
            self.name,
            message.recipient.id,
            message.masked_address,
        )
        return Receipt(self.name, str(mail["Message-ID"]), self._clock())
