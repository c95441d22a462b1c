"""Mail for the parents' one-time codes: a real SMTP client, or an admin-read outbox in Redis.

The outbox necessarily holds the recipient and the code, so it lives only as long as a code
does (Retention.outbox_days) and is capped in length. Nothing here logs an address or a body.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from agegate.clock import Clock, iso
from agegate.crypto import new_id
from agegate.errors import MailUnavailable
from agegate.storage.keys import Retention
from agegate.storage.mail import MailOutbox

log = logging.getLogger("agegate.mailer")

SMTP_TIMEOUT_S = 10


class Mailer:
    """Send plain-text mail to AGEGATE_SMTP_URL, or queue it in the outbox when that is unset."""

    def __init__(
        self,
        client: redis.Redis,
        retention: Retention,
        clock: Clock,
        smtp_url: str | None,
        sender: str,
    ) -> None:
        self.store = MailOutbox(client, retention)
        self.retention = retention
        self.clock = clock
        self.smtp_url = smtp_url
        self.sender = sender

    def send(self, to: str, subject: str, body: str) -> str:
        """Deliver one message; returns "smtp" or "outbox". Raises MailUnavailable on failure."""
        if self.smtp_url:
            self._smtp(to, subject, body)
            return "smtp"
        self._outbox(to, subject, body)
        return "outbox"

    def _smtp(self, to: str, subject: str, body: str) -> None:
        url = urlsplit(self.smtp_url or "")
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise MailUnavailable("AGEGATE_SMTP_URL is not an smtp:// or smtps:// URL.")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        port = url.port or (465 if url.scheme == "smtps" else 25)
        try:
            with smtp_class(url.hostname, port, timeout=SMTP_TIMEOUT_S) as smtp:
                if url.username:
                    smtp.login(unquote(url.username), unquote(url.password or ""))
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            # The type only: SMTP replies can echo the recipient address.
            log.error("mail not sent: %s", type(error).__name__)
            raise MailUnavailable() from None

    def _outbox(self, to: str, subject: str, body: str) -> None:
        entry = {"id": new_id("mail"), "at": iso(self.clock.now()), "to": to,
                 "subject": subject, "body": body}
        self.store.push(entry)

    def outbox(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; what an admin relays by hand when no SMTP server is configured."""
        return self.store.recent(limit)
