"""Local services: the schedule file (JSON and CSV) and the computed twilight."""

from __future__ import annotations

import datetime
from pathlib import Path

from koadep.plugins import Registry
from koadep.services import ComputedTwilight, LocalSchedule, semester_of_night

ROWS = [
    {
        "date": "2024-03-14",
        "start": "18:00",
        "end": "23:59",
        "instrument": "nirc2",
        "progid": "C123",
        "pi": "Example Name",
        "institution": "Caltech",
        "title": "T1",
        "propint": "12",
    },
    {
        "date": "2024-03-14",
        "start": "00:00",
        "end": "06:00",
        "instrument": "NIRC2",
        "progid": "2024A_U456",
        "pi": "Other",
        "institution": "UCSC",
        "title": "T2",
    },
]


def test_json_and_csv_give_the_same_schedule(tmp_path: Path) -> None:
    import csv
    import json

    (tmp_path / "s.json").write_text(json.dumps(ROWS))
    with (tmp_path / "s.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    a = LocalSchedule.from_file(tmp_path / "s.json")
    b = LocalSchedule.from_file(tmp_path / "s.csv")
    assert a == b
    night = a.entries(datetime.date(2024, 3, 14), 2, "NIRC2")
    assert [e.semid for e in night] == ["2024A_C123", "2024A_U456"]
    assert a.pi("2024A_C123") == "Example Name" and a.proprietary_period("2024A_C123") == 12
    assert a.proprietary_period("2024A_U456") is None
    assert a.title("2024B_XXXX") is None


def test_semester_of_night() -> None:
    assert semester_of_night(datetime.date(2024, 1, 31)) == "2023B"
    assert semester_of_night(datetime.date(2024, 2, 1)) == "2024A"
    assert semester_of_night(datetime.date(2024, 7, 31)) == "2024A"
    assert semester_of_night(datetime.date(2024, 8, 1)) == "2024B"


def test_twilight_on_maunakea_is_plausible() -> None:
    twilight = ComputedTwilight()
    for month in range(1, 13):
        sunrise, sunset = twilight.sun_times(datetime.date(2025, month, 15))
        rise = int(sunrise[:2]) + int(sunrise[3:5]) / 60
        down = int(sunset[:2]) + int(sunset[3:5]) / 60
        assert 15.6 < rise < 17.3, (month, sunrise)  # 05:35 - 07:20 HST
        assert 3.6 < down < 5.3, (month, sunset)  # 17:35 - 19:20 HST


def test_telescope_numbers_come_from_the_instruments() -> None:
    registry = Registry.default()
    assert (registry.instrument("nirc2").telescope, registry.instrument("HIRES").telescope) == (2, 1)
    assert registry.instrument("GUIDER").telescope is None  # each file's TELESCOP says


def test_every_service_name_imports_from_the_package() -> None:
    """The split into protocols, local services and clocks keeps ``from koadep.services import X``."""
    import koadep.services as services
    from koadep.services import clock, local, protocols

    for module in (clock, local, protocols):
        for name in module.__all__:
            assert getattr(services, name) is getattr(module, name), name
    assert services.semester_of_night(datetime.date(2024, 8, 1)) == "2024B"
