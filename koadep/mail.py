r"""E-mail through the configured SMTP server (alerts and reports).

The settings are ``smtp_host``, ``smtp_port``, ``smtp_starttls``, ``smtp_ssl``, ``smtp_user``,
``smtp_password``, ``alert_from`` and ``alert_to`` (comma separated). The password
is never logged or put into an error message, and never crosses the network in
clear: with ``smtp_user`` set, the login happens only over TLS, either after
STARTTLS (``smtp_starttls``) or on an SMTPS connection (``smtp_ssl``), unless
``smtp_allow_plaintext_auth`` is true; otherwise
:func:`send_mail` refuses before it connects. Every header value is made safe
with :func:`header_text` (no line breaks or other control characters reach a
header).

Examples
--------
>>> from koadep.config import Config
>>> message = build_message(Config(alert_to="a@x.org, b@x.org"), "subject", "body")
>>> message["To"], message["Subject"]
('a@x.org, b@x.org', 'subject')
>>> message.get_content_type()
'text/plain'
>>> build_message(Config(), "alert [NIRC2\nBcc: x@evil.org]", "body")["Subject"]
'alert [NIRC2^JBcc: x@evil.org]'
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import unicodedata
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from koadep.config import Config

__all__ = ["MailError", "build_message", "header_text", "recipients", "send_mail"]


class MailError(RuntimeError):
    """The message could not be sent (the text says why; it never holds the password)."""


#: Unicode categories escaped in headers: controls, format, surrogates, private, unassigned, line breaks.
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _visible(c: str) -> str:
    if ord(c) < 0x20 or c == "\x7f":
        return "^" + chr(ord(c) ^ 0x40)
    return f"<U+{ord(c):04X}>"


def header_text(value: object, limit: int = 400) -> str:
    r"""``value`` as text safe for a mail header: no line break nor other control character, at most
    ``limit`` characters. Control characters are shown in caret notation (``^M^J`` for CR LF), other
    unsafe characters (format, private, line and paragraph separators) as ``<U+XXXX>``.

    Examples
    --------
    >>> header_text("NIRC2\r\nBcc: x@evil.org\x00\u2028")
    'NIRC2^M^JBcc: x@evil.org^@<U+2028>'
    >>> header_text("a" * 10, limit=4)
    'aaa…'
    """
    text = "".join(_visible(c) if unicodedata.category(c) in _UNSAFE else c for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _addresses(text: str, key: str) -> list[str]:
    found = [a.strip() for a in text.split(",") if a.strip()]
    for address in found:
        if header_text(address) != address:
            raise MailError(f"{key} holds a control character: {header_text(address)!r}")
    return found


def recipients(config: Config) -> list[str]:
    """The addresses of ``alert_to``.

    Raises
    ------
    MailError
        When an address holds a line break or another control character.
    """
    return _addresses(config.alert_to, "alert_to")


def _sender(config: Config) -> str:
    if config.alert_from:
        return _addresses(config.alert_from, "alert_from")[0]
    return f"koadep@{socket.getfqdn()}"


def build_message(config: Config, subject: str, text: str, html: str | None = None) -> EmailMessage:
    """A message from ``alert_from`` to ``alert_to``: plain text, with an HTML alternative if given."""
    message = EmailMessage()
    message["Subject"] = header_text(subject)
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
        login or the message; or when a login would cross the network in clear
        (``smtp_user`` without ``smtp_starttls`` or ``smtp_ssl``, unless ``smtp_allow_plaintext_auth``),
        in which case nothing is sent to the server at all.
    """
    to = recipients(config)
    if not to:
        raise MailError("no recipients: set alert_to (KOADEP_ALERT_TO)")
    message = build_message(config, subject, text, html)
    where = f"{config.smtp_host}:{config.smtp_port}"
    encrypted = config.smtp_ssl or config.smtp_starttls
    if config.smtp_user and not encrypted and not config.smtp_allow_plaintext_auth:
        raise MailError(
            f"refusing to log in to the mail server {where} as {config.smtp_user!r} without encryption "
            "(the password would cross the network in clear): set smtp_starttls = true (or smtp_ssl = "
            "true for SMTPS, port 465), or smtp_allow_plaintext_auth = true for a trusted local relay"
        )
    try:
        if config.smtp_ssl:
            context = ssl.create_default_context()
            connection = smtplib.SMTP_SSL(
                config.smtp_host, config.smtp_port, timeout=timeout, context=context
            )
        else:
            connection = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout)
        with connection as smtp:
            if config.smtp_starttls and not config.smtp_ssl:
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
