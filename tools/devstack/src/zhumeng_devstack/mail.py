"""A local SMTP sink for development and tests: a real SMTP server (aiosmtpd) on loopback
that keeps every message it receives, in memory and as .eml files."""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any


class MailSink:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.folder.mkdir(parents=True, exist_ok=True)
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                with sink._lock:
                    sink.messages.append(msg)
                    n = len(sink.messages)
                (sink.folder / f"{n:06d}.eml").write_bytes(envelope.content)
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
