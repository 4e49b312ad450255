"""E-mail through the configured SMTP server (alerts and reports).

The settings are ``smtp_host``, ``smtp_port``, ``smtp_starttls``, ``smtp_user``,
``smtp_password``, ``alert_from`` and ``alert_to`` (comma separated). The password
is never logged or put into an error message.

Examples
--------
>>> from koadep.config import Config
>>> message = build_message(Config(alert_to="a@x.org, b@x.org"), "subject", "body")
>>> message["To"], message["Subject"]
('a@x.org, b@x.org', 'subject')
>>> message.get_content_type()
'text/plain'
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from koadep.config import Config

__all__ = ["MailError", "build_message", "recipients", "send_mail"]


class MailError(RuntimeError):
    """The message could not be sent (the text says why; it never holds the password)."""


def recipients(config: Config) -> list[str]:
    """The addresses of ``alert_to``."""
    return [a.strip() for a in config.alert_to.split(",") if a.strip()]


def _sender(config: Config) -> str:
    return config.alert_from or f"koadep@{socket.getfqdn()}"


def build_message(config: Config, subject: str, text: str, html: str | None = None) -> EmailMessage:
    """A message from ``alert_from`` to ``alert_to``: plain text, with an HTML alternative if given."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = _sender(config)
    message["To"] = ", ".join(recipients(config))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="koadep")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send_mail(
    config: Config, subject: str, text: str, html: str | None = None, *, timeout: float = 30.0
) -> EmailMessage:
    """Send one message with the SMTP settings of ``config``; return it.

    Raises
    ------
    MailError
        When ``alert_to`` is empty or the server cannot be reached, refuses the
        login or the message.
    """
    to = recipients(config)
    if not to:
        raise MailError("no recipients: set alert_to (KOADEP_ALERT_TO)")
    message = build_message(config, subject, text, html)
    where = f"{config.smtp_host}:{config.smtp_port}"
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout) as smtp:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password)
            smtp.send_message(message, from_addr=_sender(config), to_addrs=to)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"the mail server {where} refused the login of {config.smtp_user!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        reason = str(exc).replace(config.smtp_password, "***") if config.smtp_password else str(exc)
        raise MailError(f"cannot send mail through {where}: {type(exc).__name__}: {reason}") from exc
    return message
