"""Steps see a processing-only view of the configuration, never its secrets.

``ctx.config`` is a :class:`koadep.config.ProcessingSettings`: a step that reads
the database, SMTP or ingest secrets gets an ``AttributeError`` (a
``CODE_ERROR`` in the pipeline), and no secret is reachable from the context.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from koadep.config import Config, ProcessingSettings
from koadep.context import Context
from koadep.header import Header
from koadep.pipeline import StepResult, card, critical, optional, run
from koadep.testing import write_raw_fits

SECRETS = {
    "db_password": "db-secret-1",
    "smtp_password": "smtp-secret-2",
    "ingest_token": "ingest-secret-3",
    "ingest_api_token": "api-secret-4",
}
CONFIG = Config(
    db_url="mysql://koa@db.example:3306/koa",
    smtp_user="koa",
    ingest_url="https://ingest.example/api",
    transfer_destination="koa@archive.example:/incoming",
    dqa_version="9.9",
    **SECRETS,
)


def for_file(tmp_path: Path) -> Context:
    """The context processing builds for a NIRC2 file, configured with every secret."""
    path = write_raw_fits(
        tmp_path / "n0001.fits",
        [("INSTRUME", "NIRC2"), ("DATE-OBS", "2025-12-08"), ("UTC", "09:06:38.08")],
        None,
    )
    return Context.for_file(path, config=CONFIG)


def reachable(root: object) -> Iterator[object]:
    """Every object reachable from ``root`` through attributes and containers.

    Modules, classes and functions are not followed (they are code, not state),
    nor are loggers and handlers (the process-wide logging tree).
    """
    seen: set[int] = set()
    todo = [root]
    skipped = (
        types.ModuleType,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        logging.Logger,
        logging.LoggerAdapter,
        logging.Handler,
    )
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skipped):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        if isinstance(obj, Mapping):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        if attrs.has(type(obj)):
            todo.extend(getattr(obj, a.name, None) for a in attrs.fields(type(obj)))
        todo.extend(vars(obj).values() if hasattr(obj, "__dict__") else ())
        for klass in type(obj).__mro__:
            for slot in getattr(klass, "__slots__", ()):
                todo.append(getattr(obj, slot, None))


def test_the_context_holds_the_processing_view(tmp_path: Path) -> None:
    ctx = for_file(tmp_path)
    assert ctx.config == CONFIG.processing()
    assert isinstance(ctx.config, ProcessingSettings)
    assert ctx.config.dqa_version == "9.9"


@pytest.mark.parametrize("name", [*SECRETS, "db_url", "smtp_user", "ingest_url", "transfer_destination"])
def test_a_step_reading_a_secret_fails_with_a_code_error(tmp_path: Path, name: str) -> None:
    ctx = for_file(tmp_path)
    assert ctx.fits is not None

    def leak(header: Header, ctx: Context) -> StepResult:
        return StepResult.done(card("LEAKED", getattr(ctx.config, name)))

    outcome = run((optional(leak), critical(lambda h, c: StepResult.done())), ctx.fits.header, ctx)

    [issue] = outcome.issues
    assert (issue.code, issue.step) == ("CODE_ERROR", "leak")
    assert issue.message.startswith("AttributeError:")
    assert "LEAKED" not in outcome.header


def test_no_secret_is_reachable_from_the_context(tmp_path: Path) -> None:
    ctx = for_file(tmp_path)
    texts = [obj for obj in reachable(ctx) if isinstance(obj, str)]

    assert "9.9" in texts
    assert not any(secret in text for text in texts for secret in SECRETS.values())
    assert not any(isinstance(obj, Config) for obj in reachable(ctx))


def test_a_context_built_from_a_config_keeps_only_its_view() -> None:
    ctx = Context(config=CONFIG)
    assert ctx.config == CONFIG.processing()
    assert Context().config == Config().processing()
