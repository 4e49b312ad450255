"""FakeServices: the local stand-in for the Keck API and the EPICS archiver, asked with plain httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from koadep.testing.services import FakeServices, free_port

DATA = {
    "/schedule/getTelnr": [
        {"params": {"instr": "NIRC2"}, "answer": [{"TelNr": 2}]},
        {"params": {"instr": "MOSFIRE"}, "answer": [{"TelNr": 1}]},
    ],
    "/retrieval/data/getData.json": [
        {"params": {"pv": "k0:met:tempRaw"}, "answer": [{"data": [{"secs": 1, "nanos": 0, "val": 2.5}]}]},
    ],
}


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    with FakeServices(DATA) as f:
        yield f


def get(fake: FakeServices, path: str, timeout: float = 2.0, **params: object) -> httpx.Response:
    return httpx.get(fake.url + path, params=params, timeout=timeout)


def test_answers_from_the_data(fake: FakeServices) -> None:
    assert get(fake, "/schedule/getTelnr", instr="NIRC2").json() == [{"TelNr": 2}]
    assert get(fake, "/schedule/getTelnr", instr="MOSFIRE").json() == [{"TelNr": 1}]
    assert fake.requests == [
        ("/schedule/getTelnr", {"instr": "NIRC2"}),
        ("/schedule/getTelnr", {"instr": "MOSFIRE"}),
    ]


def test_params_are_a_subset_of_the_query(fake: FakeServices) -> None:
    answer = get(fake, "/retrieval/data/getData.json", pv="k0:met:tempRaw", **{"from": "a", "to": "b"})
    assert answer.json()[0]["data"][0]["val"] == 2.5


def test_no_match_gives_the_default(fake: FakeServices) -> None:
    assert get(fake, "/schedule/getTelnr", instr="HIRES").json() == []
    assert get(fake, "/schedule/getTelnr").json() == []
    assert get(fake, "/nowhere").json() == []
    with FakeServices(DATA, default={"success": 0}) as other:
        assert get(other, "/nowhere").json() == {"success": 0}


def test_a_missing_param_does_not_match_none() -> None:
    with FakeServices({"/p": [{"params": {"x": None}, "answer": "matched"}]}) as fake:
        assert get(fake, "/p").json() == []
        assert get(fake, "/p", x="None").json() == "matched"


def test_numbers_match_their_text() -> None:
    with FakeServices({"/s": [{"params": {"telnr": 2}, "answer": "k2"}]}) as fake:
        assert get(fake, "/s", telnr="2").json() == "k2"


def test_add_goes_first(fake: FakeServices) -> None:
    fake.add("/schedule/getTelnr", {"instr": "NIRC2"}, [{"TelNr": 1}])
    fake.add("/new", {}, {"fresh": True})
    assert get(fake, "/schedule/getTelnr", instr="NIRC2").json() == [{"TelNr": 1}]
    assert get(fake, "/new", anything="x").json() == {"fresh": True}


def test_count(fake: FakeServices) -> None:
    get(fake, "/schedule/getTelnr", instr="NIRC2")
    get(fake, "/schedule/getTelnr", instr="NIRC2")
    get(fake, "/retrieval/data/getData.json", pv="x")
    assert fake.count() == 3
    assert fake.count("/schedule") == 2
    assert fake.count("/retrieval/") == 1
    assert fake.count("/employee") == 0


def test_latency(fake: FakeServices) -> None:
    fake.latency = 0.1
    started = time.monotonic()
    assert get(fake, "/schedule/getTelnr", instr="NIRC2").json() == [{"TelNr": 2}]
    assert time.monotonic() - started >= 0.1


def test_slow_outlasts_a_timeout(fake: FakeServices) -> None:
    fake.slow = 1.0
    with pytest.raises(httpx.ReadTimeout):
        get(fake, "/schedule/getTelnr", timeout=0.2, instr="NIRC2")
    assert fake.count() == 1


@pytest.mark.parametrize("status", [404, 429, 500, 503])
def test_status(fake: FakeServices, status: int) -> None:
    fake.status = status
    assert get(fake, "/schedule/getTelnr", instr="NIRC2").status_code == status
    fake.status = 0
    assert get(fake, "/schedule/getTelnr", instr="NIRC2").status_code == 200


def test_garbage(fake: FakeServices) -> None:
    fake.garbage = True
    response = get(fake, "/schedule/getTelnr", instr="NIRC2")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_redirect_loop(fake: FakeServices) -> None:
    fake.redirect_loop = True
    response = get(fake, "/schedule/getTelnr", instr="NIRC2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/schedule/getTelnr?instr=NIRC2"
    with pytest.raises(httpx.TooManyRedirects):
        httpx.get(fake.url + "/x", follow_redirects=True, timeout=2.0)


def test_go_down_and_up_on_the_same_port(fake: FakeServices) -> None:
    port = fake.port
    with httpx.Client(timeout=2.0) as client:
        assert client.get(fake.url + "/schedule/getTelnr", params={"instr": "NIRC2"}).status_code == 200
        fake.go_down()
        assert fake.down
        with pytest.raises(httpx.TransportError):  # the kept-alive connection is cut too
            client.get(fake.url + "/schedule/getTelnr")
        with pytest.raises(httpx.ConnectError):
            httpx.get(fake.url + "/schedule/getTelnr", timeout=2.0)
        fake.up()
        assert not fake.down and fake.port == port
        assert client.get(fake.url + "/schedule/getTelnr", params={"instr": "NIRC2"}).json() == [{"TelNr": 2}]


def test_not_up_until_started() -> None:
    fake = FakeServices(DATA, port=free_port())
    assert fake.down
    with fake:
        assert not fake.down
        assert get(fake, "/schedule/getTelnr", instr="NIRC2").json() == [{"TelNr": 2}]
    assert fake.down


def test_connections_and_headers(fake: FakeServices) -> None:
    with httpx.Client(timeout=2.0, headers={"X-Test": "yes"}) as client:
        for _ in range(5):
            client.get(fake.url + "/schedule/getTelnr")
    assert fake.connections == 1
    assert len(fake.headers) == 5 and fake.headers[0]["X-Test"] == "yes"


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "fixtures.json"
    path.write_text(json.dumps(DATA), encoding="utf-8")
    with FakeServices.from_file(path, default={"none": 1}) as fake:
        assert get(fake, "/schedule/getTelnr", instr="MOSFIRE").json() == [{"TelNr": 1}]
        assert get(fake, "/other").json() == {"none": 1}
