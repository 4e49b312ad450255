"""The services the configuration chooses, ``koadep services check``, and refilling after an outage.

* :meth:`Services.from_config` takes the live service when its URL is set and
  the offline one otherwise, unless a ``*_service`` setting says otherwise; a
  choice that cannot work is one clear error.
* ``koadep services check`` asks each service once and tells what answered
  (exit 0), what did not (exit 1) and what is misconfigured (exit 2).
* A file archived while the archiver was down gets WARN ``WEATHER_DATA_FAIL``;
  ``koadep status --issue WEATHER_DATA_FAIL`` finds it and ``koadep reprocess
  --issue WEATHER_DATA_FAIL --confirm`` fills its weather once the archiver is back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from koadep.cli import main
from koadep.config import Config
from koadep.services import ComputedTwilight, LocalSchedule, Services
from koadep.services.archiver import EpicsArchiver
from koadep.services.keck import KeckApi
from koadep.status import open_store
from koadep.testing.services import FakeServices

from .conftest import json_lines
from .test_weather_outage import PATH, archiver_data, nirc2_night

SCHEDULE = [
    {"date": "2024-03-14", "start": "18:00", "end": "06:00", "instrument": "NIRC2", "progid": "2024A_C123"}
]


@pytest.fixture
def schedule_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(SCHEDULE))
    return path


def test_offline_by_default(schedule_file: Path) -> None:
    services = Services.from_config(Config(schedule_file=schedule_file))
    assert isinstance(services.schedule, LocalSchedule) and services.proposals is services.schedule
    assert isinstance(services.twilight, ComputedTwilight)
    assert (services.staff, services.weather, services.catalog) == (None, None, None)
    assert list(services.live()) == []


def test_live_when_the_urls_are_set(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'koa.sqlite'}")
    config = Config(
        keck_api_url="http://127.0.0.1:9", archiver_url="http://127.0.0.1:9/k{telnr}/getData.json"
    )
    services = Services.from_config(config, catalog=store)
    assert all(isinstance(s, KeckApi) for s in (services.schedule, services.proposals, services.twilight))
    assert services.staff is services.schedule
    assert isinstance(services.weather, EpicsArchiver)
    assert services.catalog is store
    assert [s.name for s in services.live()] == ["keck-api"]  # archiver services are made per telescope


def test_each_service_can_be_chosen(schedule_file: Path) -> None:
    config = Config(
        keck_api_url="http://127.0.0.1:9",
        schedule_file=schedule_file,
        schedule_service="file",
        twilight_service="computed",
        staff_service="none",
    )
    services = Services.from_config(config)
    assert isinstance(services.schedule, LocalSchedule)
    assert isinstance(services.proposals, KeckApi)
    assert isinstance(services.twilight, ComputedTwilight)
    assert services.staff is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"schedule_service": "api"}, "schedule_service = 'api' but that service is not configured"),
        ({"weather_service": "archiver"}, "weather_service = 'archiver' but that service is not configured"),
    ],
)
def test_a_choice_that_cannot_work_is_one_clear_error(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Services.from_config(Config(**settings))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"keck_api_url": "ftp://x"}, "keck_api_url must be an http:// or https:// URL"),
        ({"weather_service": "api"}, "weather_service must be one of auto, archiver, none"),
        ({"archiver_timeout": 0}, "archiver_timeout must be more than 0"),
    ],
)
def test_bad_service_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(**settings)  # type: ignore[arg-type]


# koadep services check --------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    data = archiver_data()
    entry = {"ProjCode": "2024A_C123", "StartTime": "18:00", "EndTime": "06:00", "Instrument": "NIRC2"}
    data["/schedule/getSchedule"] = [{"params": {"date": "2024-03-14"}, "answer": [entry]}]
    twilight = {"sunrise": "16:38:00", "sunset": "04:33:00"}
    data["/schedule/getTwilightData"] = [{"params": {}, "answer": twilight}]
    data["/employee/getNightStaff"] = [{"params": {}, "answer": [{"Type": "oa", "Alias": "jdoe"}]}]
    data["/proposals/getPI"] = [{"params": {}, "answer": {"success": 1, "data": {"LastName": "Doe"}}}]
    with FakeServices({f"/k2{PATH}" if p == PATH else p: v for p, v in data.items()}) as server:
        yield server


def write_config(folder: Path, fake: FakeServices, **extra: str) -> Path:
    lines = [
        f'keck_api_url = "{fake.url}"',
        f'archiver_url = "{fake.url}/k{{telnr}}{PATH}"',
        "keck_api_timeout = 1",
        "archiver_timeout = 1",
        f'output_root = "{folder / "out"}"',
        *(f'{k} = "{v}"' for k, v in extra.items()),
    ]
    path = folder / "koadep.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


WHEN = ["--when", "2024-03-15T08:10:00", "--semid", "2024A_C123"]


def test_services_check_reports_what_answered(
    tmp_path: Path, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fake)
    assert main(["services", "check", "--config", str(config), *WHEN]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]  # below the header row
    assert [line.split()[:3] for line in lines] == [
        ["schedule", "api", "ok"],
        ["proposals", "api", "ok"],
        ["twilight", "api", "ok"],
        ["staff", "api", "ok"],
        ["weather", "archiver", "ok"],
        ["catalog", "none", "absent"],
    ]
    assert "'Doe'" in lines[1] and "'jdoe'" in lines[3] and "9 values" in lines[4]
    assert main(["services", "check", "--config", str(config), *WHEN, "--json"]) == 0
    checks = json_lines(capsys.readouterr().out)
    assert {c["service"]: c["state"] for c in checks}["weather"] == "ok"
    assert all(set(c) == {"service", "source", "state", "seconds", "answer", "where"} for c in checks)


def test_services_check_with_a_service_down_exits_1(
    tmp_path: Path, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fake)
    fake.go_down()
    assert main(["services", "check", "--config", str(config), *WHEN]) == 1
    out = capsys.readouterr().out
    assert "schedule   api       failed" in out and "cannot reach" in out
    assert "weather    archiver  failed" in out


def test_services_check_names_a_misconfiguration_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "koadep.toml"
    config.write_text('staff_service = "api"\n')
    assert main(["services", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "koadep services check: staff_service = 'api' but that service is not configured"
    config.write_text(
        f'keck_api_url = "http://127.0.0.1:9"\nservices_ca_bundle = "{tmp_path / "none.pem"}"\n'
    )
    assert main(["services", "check", "--config", str(config)]) == 2
    assert "services_ca_bundle" in capsys.readouterr().err


def test_services_check_opens_no_store_of_its_own(tmp_path: Path, fake: FakeServices) -> None:
    config = write_config(tmp_path, fake)
    main(["services", "check", "--config", str(config), *WHEN])
    assert not (tmp_path / "out" / "koadep.sqlite").exists()


def test_services_fake_refuses_a_missing_fixture_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["services", "fake", str(tmp_path / "missing.json")]) == 2
    assert "is not a file" in capsys.readouterr().err


# refilling after an outage ----------------------------------------------------------------------


def test_reprocess_by_issue_fills_the_weather_once_the_archiver_is_back(
    tmp_path: Path, fake: FakeServices, capsys: pytest.CaptureFixture[str]
) -> None:
    raws = nirc2_night(tmp_path / "raw")[:3]
    config = write_config(tmp_path, fake)
    fake.go_down()
    for raw in raws:
        assert (
            main(["archive", "NIRC2", "--filepath", str(raw), "--config", str(config), "--no-transfer"]) == 0
        )
    capsys.readouterr()
    assert main(["status", "NIRC2", "--issue", "WEATHER_DATA_FAIL", "--config", str(config), "--json"]) == 0
    assert len(json_lines(capsys.readouterr().out)) == 3

    fake.up()
    args = ["reprocess", "NIRC2", "--issue", "WEATHER_DATA_FAIL", "--config", str(config), "--no-transfer"]
    assert main([*args, "--confirm"]) == 0
    capsys.readouterr()
    assert main(["status", "NIRC2", "--issue", "WEATHER_DATA_FAIL", "--config", str(config), "--json"]) == 0
    assert json_lines(capsys.readouterr().out) == []
    products = sorted((tmp_path / "out").rglob("lev0/*.fits"))
    assert len(products) == 3
    for product in products:
        header = fits.getheader(product)
        assert isinstance(header["WXOUTTMP"], float) and header["WXTIME"] != "null"
