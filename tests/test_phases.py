"""The named phases of :func:`koadep.process.process_file` and :func:`koadep.transfer.transfer_record`.

The end-to-end tests (``test_process``, ``test_gold``, ``test_shipping``) cover
the phases together; these tests reach the branches of one phase that are hard
to provoke through a whole run: a plugin failing while naming related files, a
KOAID check that must not be asked, a record another process claims between
reading and claiming, a destination copy that differs, a deadline already past.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from koadep import process, transfer
from koadep.config import Config
from koadep.context import Context
from koadep.header import Header
from koadep.issues import Issue
from koadep.pipeline import Outcome
from koadep.services import Services
from koadep.status import State, open_store
from koadep.status.store import StoreError

from .test_shipping import base_config, processed
from .test_status import nirc2_file


# ------------------------------------------------------------------ processing
def _opts(config: Config, services: Services, **changes: Any) -> Any:
    logger, handler = process._run_logger("phases")
    opts = process._Run(config, services, None, None, True, None, None, logger, handler, time.perf_counter())
    return attrs.evolve(opts, **changes)


def _outcome(ok: bool, *issues: Issue, **cards: object) -> Outcome:
    return Outcome(Header.from_mapping(cards), {}, tuple(issues), ok)


@pytest.fixture
def ctx(tmp_path: Path, config: Config, services: Services) -> Context:
    path = nirc2_file(tmp_path / "n0101.fits")
    return process._context(path, _opts(config, services))


def test_identity_then_dqa_keep_the_issues_of_both(ctx: Context) -> None:
    identity = process._run_identity(ctx)
    assert identity.ok and identity.header.present("KOAID")
    dqa = process._run_dqa(identity, ctx)
    assert dqa.ok and dqa.issues[: len(identity.issues)] == identity.issues
    assert process._check_ofname(dqa, ctx, Path("n0101.fits"), None) == []
    assert [i.code for i in process._check_ofname(dqa, ctx, Path("other.fits"), None)] == [
        "MISMATCHED_FILENAME"
    ]


def test_a_failed_ofname_step_is_bad_ofname_and_other_failures_are_not(ctx: Context) -> None:
    failed = _outcome(False, Issue.error("SET_OFNAME_ERROR", "no OFNAME", "set_ofname"))
    assert [i.code for i in process._check_ofname(failed, ctx, Path("n0101.fits"), None)] == ["BAD_OFNAME"]
    other = _outcome(False, Issue.error("SET_UT_ERROR", "no UT", "set_ut"))
    assert process._check_ofname(other, ctx, Path("n0101.fits"), None) == []


def test_related_files_are_asked_only_after_the_steps_succeeded_and_a_failing_plugin_warns(
    ctx: Context,
) -> None:
    class Failing:
        def related_files(self, header: Header, ctx: Context) -> list[str]:
            raise RuntimeError("no catalogue")

    failing = attrs.evolve(ctx, plugin=Failing(), registry=None)
    assert process._find_related(_outcome(False), failing) == ([], [])
    related, issues = process._find_related(_outcome(True), failing)
    assert related == [] and [(i.code, i.severity.name) for i in issues] == [("PLUGIN_ERROR", "WARN")]
    assert "no catalogue" in issues[0].message


def test_result_fields_take_the_koaid_without_its_suffix(ctx: Context) -> None:
    fields = process._result_fields(_outcome(True, KOAID="NC.20240315.29730.25.fits"), ctx, ["a.fits"])
    assert fields["koaid"] == "NC.20240315.29730.25" and fields["related"] == ("a.fits",)
    assert fields["instrument"] == "NIRC2" and fields["raw_header"] is ctx.fits.header  # type: ignore[union-attr]
    assert process._result_fields(_outcome(False), ctx, [])["koaid"] is None


def test_the_koaid_is_reserved_only_for_a_file_nothing_stopped(config: Config, services: Services) -> None:
    asked: list[str] = []

    def check(koaid: str) -> Issue | None:
        asked.append(koaid)
        return Issue.invalid("DUPLICATE_KOAID", "held by record 7", "koaid_check")

    opts = _opts(config, services, koaid_check=check)
    warning = Issue.warn("SET_UT_ERROR", "no UT", "set_ut")
    assert process._reserve_koaid(None, [], opts) == []
    assert process._reserve_koaid("K1", [Issue.error("X", "stop", "s")], opts) == []
    assert asked == []
    assert [i.code for i in process._reserve_koaid("K2", [warning], opts)] == ["DUPLICATE_KOAID"]
    assert asked == ["K2"] and process._stops([warning]) is False
    assert process._reserve_koaid("K3", [], _opts(config, services)) == []


def test_a_dry_write_returns_the_products_without_writing_and_the_log_ends_processed(
    ctx: Context, config: Config, services: Services
) -> None:
    opts = _opts(config, services, write=False)
    outcome = process._run_dqa(process._run_identity(ctx), ctx)
    fields = process._result_fields(outcome, ctx, [])
    products, issues = process._write(outcome, ctx, fields, list(outcome.issues), opts)
    assert products and [i.code for i in issues] == ["METADATA_TABLES_MISSING"]
    assert not config.output_root.exists()
    last = process._log_product([], opts)(issues).decode().splitlines()[-1]
    assert "finished: PROCESSED METADATA_TABLES_MISSING in " in last
    result = process._finished(Path("n0101.fits"), [], {**fields, "products": products}, opts)
    assert result.state == "PROCESSED" and "INFO: finished: PROCESSED  in " in result.log.splitlines()[-1]


# ------------------------------------------------------------------ transfer
@pytest.fixture
def store(tmp_path: Path) -> Any:
    return open_store(f"sqlite:///{tmp_path / 'status.sqlite'}")


def _job(store: Any, record_id: int, config: Config, deadline: float = 60) -> Any:
    record = store.get(record_id)
    target = transfer._target(record, config)
    now = time.monotonic()
    return transfer._Job(store, record, config, target, now, now + deadline, time.sleep, 60, 3600)


def test_resolve_raises_for_a_missing_record_and_skips_one_without_a_koaid(
    store: Any, tmp_path: Path
) -> None:
    config = base_config(tmp_path)
    with pytest.raises(StoreError, match="no status record 99"):
        transfer._resolve(store, 99, config)
    rid = processed(store, config, tmp_path)
    assert transfer._resolve(store, rid, config).id == rid
    store.update(rid, koaid=None)
    skipped = transfer._resolve(store, rid, config)
    assert skipped.skipped and skipped.message == f"record {rid} has no KOAID; nothing to transfer"


def test_claim_leaves_a_record_another_process_took_first(store: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path)
    rid = processed(store, config, tmp_path)
    seen = store.get(rid)
    store.transition(rid, State.TRANSFERRING, expected=State.PROCESSED)  # the other process
    result = transfer._claim(store, seen)
    assert result.skipped and result.state == State.TRANSFERRING
    assert result.message.startswith(f"another process took record {rid} first")


@pytest.fixture
def job(store: Any, tmp_path: Path) -> Any:
    """The job of a PROCESSED record with real products, to a local destination."""
    config = base_config(tmp_path)
    return _job(store, processed(store, config, tmp_path), config)


def test_products_are_listed_with_their_xfr_table_and_an_unwritable_table_is_a_transfer_error(
    job: Any,
) -> None:
    files = transfer._list_products(job)
    level_dir = Path(job.record.process_dir)
    assert (level_dir / f"{job.koaid}.xfr.table").read_text().split() == sorted(files)
    (level_dir / f"{job.koaid}.xfr.table").unlink()
    (level_dir / f"{job.koaid}.xfr.table").mkdir()
    with pytest.raises(transfer.TransferProblem, match="cannot prepare the transfer") as raised:
        transfer._list_products(job)
    assert raised.value.code == "TRANSFER_ERROR"


def test_verify_finds_a_copy_that_differs_and_a_past_deadline_stops_before_copying(job: Any) -> None:
    files = transfer._list_products(job)
    assert transfer._copy_and_verify(job, files) == 1
    assert transfer._verify(job, files, 1) is None
    dest = Path(job.target.path)
    damaged = sorted(files)[0]
    (dest / damaged).write_bytes(b"damaged")
    with pytest.raises(transfer._Failed, match=f"md5 differs at the destination for {damaged}"):
        transfer._verify(job, files, 1)
    late = _job(job.store, job.record.id, job.config, deadline=-1)
    with pytest.raises(transfer._Failed, match="did not finish") as raised:
        transfer._copy_and_verify(late, files)
    assert (raised.value.attempts, raised.value.names) == (0, tuple(files))


def test_fail_and_transferred_finish_the_claimed_record(store: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path)
    first, second = processed(store, config, tmp_path, 0), processed(store, config, tmp_path, 1)
    for rid in (first, second):
        store.transition(rid, State.TRANSFERRING, expected=State.PROCESSED)
    failed = transfer._fail(_job(store, first, config), transfer.TransferProblem("NO_TRANSFER_DIR", "gone"))
    assert (failed.state, failed.status_code, failed.attempts, failed.files) == (
        "ERROR",
        "NO_TRANSFER_DIR",
        0,
        (),
    )
    assert store.get(first).status == State.ERROR
    done = transfer._transferred(_job(store, second, config), ("a", "b"), 2)
    assert (done.state, done.files, done.attempts) == ("TRANSFERRED", ("a", "b"), 2)
    assert store.get(second).status == State.TRANSFERRED
