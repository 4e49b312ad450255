"""Acceptance: the four real NIRC2 frames processed against the live-service adapters.

The Keck API and the EPICS archiver are served by :class:`FakeServices` from
``tests/fixtures/services/nirc2.json`` through real sockets; the services are
built by :meth:`Services.from_config` exactly as the command line builds them.
PROGID, PROGPI, PROGINST, PROGTL1-3 (PROGTITL in the metadata table), PROPINT
(metadata only), OA, the WX cards, GUIDFWHM and GUIDTIME must come from the
served values, in the archive FITS header and in the metadata table, and the
cache must keep the Keck API requests to one per distinct question.

Spec: legacy-dep.md §6.3, §6.4, §6.7, §6.8 and §11; issue 10 (acceptance).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from koadep import process_file
from koadep.config import Config
from koadep.process import ProcessResult
from koadep.services import FixedClock, Services
from koadep.testing.services import FakeServices

from .conftest import NOW, ROOT, shared_dir

FIXTURE = ROOT / "tests" / "fixtures" / "services" / "nirc2.json"
FRAMES = ("n0902", "n0903", "n0932", "n0984")
SEMID = "2025B_U294"
TITLE = json.loads(FIXTURE.read_text())["/proposals/getTitle"][0]["answer"]["data"]["ProgramTitle"]

#: The archiver fixture's nearest samples: PV value of the first frame, +1 per later frame.
WEATHER = {
    "WXDOMHUM": 21.5,
    "WXDOMTMP": 2.25,
    "WXDWPT": -9.75,
    "WXOUTHUM": 14.5,
    "WXOUTTMP": 1.75,
    "WXPRESS": 615.25,
    "WXWNDIR": 212.5,
    "WXWNDSP": 4.5,
    "GUIDFWHM": 0.375,
}
#: Exposure times (UT) of the frames; the nearest sample is 2 s after, nanos 25x00000.
UTC = {"n0902": "09:04:42.82", "n0903": "09:05:39.94", "n0932": "09:38:16.30", "n0984": "16:57:56.05"}

#: The distinct Keck API questions of the night: PI, institution, title and
#: proprietary period of one program, the twilight of one UT date and the night
#: staff of one HST night (the headers name the program, so no schedule).
DISTINCT_KECK_QUESTIONS = 6


def sample_time(frame: str, channel: int) -> str:
    """The fixture's nearest sample time of a channel (index in WEATHER) for a frame."""
    t = datetime.datetime.fromisoformat(f"2025-12-08T{UTC[frame]}+00:00")
    nearest = datetime.datetime.fromtimestamp(int(t.timestamp()) + 2, datetime.UTC)
    return f"{nearest:%H:%M:%S}.{25 + channel}"


def metadata_row(path: Path) -> dict[str, str]:
    """The one row of a metadata table, keyword -> stripped cell."""
    lines = path.read_text().splitlines()
    names = lines[0].split("|")[1:-1]
    row, pos = {}, 0
    for name in names:
        width = len(name) + 1
        row[name.strip()] = lines[4][pos : pos + width].strip()
        pos += width
    return row


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeServices.from_file(FIXTURE) as server:
        yield server


@pytest.fixture(scope="module")
def processed(fake: FakeServices, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ProcessResult]:
    """The four frames, processed once for the module with one set of services."""
    shared = shared_dir()
    paths = [shared / "testdata" / "nirc2" / "raw" / f"{name}.fits.gz" for name in FRAMES]
    missing = [p.name for p in paths if not p.is_file()]
    assert not missing, f"real NIRC2 frames missing from {shared}: {missing}"
    config = Config(
        output_root=tmp_path_factory.mktemp("live") / "out",
        keyword_tables=shared / "KeywordTables",
        keck_api_url=fake.url,
        archiver_url=fake.url + "/k{telnr}/retrieval/data/getData.json",
    )
    services = Services.from_config(config, clock=FixedClock(NOW))
    return {path.name.split(".")[0]: process_file(path, config=config, services=services) for path in paths}


def test_the_four_frames_are_processed(processed: dict[str, ProcessResult]) -> None:
    for name, result in processed.items():
        assert result.state == "PROCESSED", (name, result.issues)
        codes = {i.code for i in result.issues}
        assert not codes & {
            "PROP_API_ERROR",
            "PROPINT_ERROR",
            "CHECK_ZERO_PROPINT_FAIL",
            "SCHEDULE_API_ERROR",
            "WEATHER_DATA_FAIL",
            "EPICS_ARCHIVER_WARNING",
            "NIGHT_STAFF_ERROR",
            "CODE_ERROR",
        }, (name, result.issues)


@pytest.mark.parametrize("frame", ["n0902", "n0903", "n0932"])
def test_program_from_the_proposals_api(processed: dict[str, ProcessResult], frame: str) -> None:
    result = processed[frame]
    header = fits.getheader(result.products["fits"])
    row = metadata_row(result.products["metadata"])
    expected = {"PROGID": "U294", "PROGPI": "MillarBlanchaer", "PROGINST": "UCSantaBarbara"}
    for keyword, value in expected.items():
        assert header[keyword] == value, keyword
        assert row[keyword] == value, keyword
    titles = {"PROGTL1": TITLE[:50], "PROGTL2": TITLE[50:100], "PROGTL3": TITLE[100:150]}
    assert all(titles.values())
    for keyword, value in titles.items():
        assert header[keyword] == value, keyword
    # the metadata table carries the whole title as PROGTITL (its keyword table has no PROGTL1-3)
    assert row["PROGTITL"] == TITLE
    assert "PROPINT" not in header
    assert row["PROPINT"] == "12"
    assert result.extras["PROPINT"] == 12


def test_daytime_dark_uses_the_served_twilight(processed: dict[str, ProcessResult]) -> None:
    """n0984 (16:57:56 UT) is after the served sunrise (16:44:40): a daytime dark with no
    target, so the zero-PROPINT policy makes it engineering with PROPINT 0."""
    result = processed["n0984"]
    header = fits.getheader(result.products["fits"])
    row = metadata_row(result.products["metadata"])
    assert header["PROGID"] == row["PROGID"] == "ENG"
    assert header["PROGPI"] == "nirc2eng"
    assert row["PROPINT"] == "0"


@pytest.mark.parametrize("frame", FRAMES)
def test_oa_and_weather_from_the_services(processed: dict[str, ProcessResult], frame: str) -> None:
    result = processed[frame]
    header = fits.getheader(result.products["fits"])
    row = metadata_row(result.products["metadata"])
    assert header["OA"] == row["OA"] == "FixtureOA"
    offset = FRAMES.index(frame)
    for keyword, value in WEATHER.items():
        assert header[keyword] == pytest.approx(value + offset), keyword
        assert float(row[keyword]) == pytest.approx(value + offset), keyword
    guidtime = sample_time(frame, list(WEATHER).index("GUIDFWHM"))
    assert header["GUIDTIME"] == row["GUIDTIME"] == guidtime
    wxtime = min(sample_time(frame, c) for c, k in enumerate(WEATHER) if k.startswith("WX"))
    assert header["WXTIME"] == row["WXTIME"] == wxtime


def test_the_cache_keeps_keck_api_requests_to_one_per_question(
    processed: dict[str, ProcessResult], fake: FakeServices
) -> None:
    keck = [r for r in fake.requests if not r[0].startswith("/k2/")]
    questions = {(path, tuple(sorted(query.items()))) for path, query in keck}
    assert len(keck) == len(questions) <= DISTINCT_KECK_QUESTIONS
    assert fake.count("/proposals/getApprovedPP") == 1
    assert fake.count("/schedule/getTwilightData") == 1
    assert fake.count("/employee/getNightStaff") == 1
    # nine channels per frame at most, each asked once
    archiver = [r for r in fake.requests if r[0].startswith("/k2/")]
    assert len(archiver) <= 9 * len(FRAMES)


def test_with_every_service_down_each_frame_is_processed_with_warnings(tmp_path: Path) -> None:
    """The same night with the Keck API and the archiver down: every frame is
    PROCESSED with the spec's WARN codes, the service-derived values are the
    defaults, and the breakers keep the cost to one failed call per service."""
    shared = shared_dir()
    with FakeServices.from_file(FIXTURE) as server:
        config = Config(
            output_root=tmp_path / "out",
            keyword_tables=shared / "KeywordTables",
            keck_api_url=server.url,
            archiver_url=server.url + "/k{telnr}/retrieval/data/getData.json",
            keck_api_timeout=1,
            archiver_timeout=1,
        )
        server.go_down()
        services = Services.from_config(config, clock=FixedClock(NOW))
        results = [
            process_file(
                shared / "testdata" / "nirc2" / "raw" / f"{name}.fits.gz", config=config, services=services
            )
            for name in FRAMES
        ]
    for name, result in zip(FRAMES, results, strict=True):
        codes = {i.code for i in result.issues}
        assert result.state == "PROCESSED", (name, result.issues)
        assert all(i.severity.name == "WARN" for i in result.issues), (name, result.issues)
        assert {"NIGHT_STAFF_ERROR", "WEATHER_DATA_FAIL"} <= codes, name
        header = fits.getheader(result.products["fits"])
        assert header["OA"] == "None" and header["WXTIME"] == "null"
    science = {i.code for i in results[FRAMES.index("n0932")].issues}
    assert {"PROP_API_ERROR", "PROPINT_ERROR"} <= science
    assert fits.getheader(results[FRAMES.index("n0932")].products["fits"])["PROGPI"] == "NONE"
    assert results[FRAMES.index("n0932")].extras["PROPINT"] == 18
    calls = {service.name: service.requests for service in services.live()}
    retries = config.services_retries + 1
    assert calls["keck-api"] <= retries and calls["archiver-k2"] <= 9 * retries, calls
