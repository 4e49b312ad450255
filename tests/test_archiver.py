"""The EPICS archiver weather service against a local fake archiver, and set_weather's warnings."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from koadep.context import Context
from koadep.header import Header
from koadep.plugins import Registry
from koadep.services import Services, WeatherSample
from koadep.services.archiver import PVS, EpicsArchiver, nearest_sample, query_window, sample_time
from koadep.services.http import BadAnswer, HttpSettings, ServiceUnavailable
from koadep.steps.observatory import set_oa, set_weather
from koadep.testing.services import FakeServices

PATH = "/retrieval/data/getData.json"
WHEN = datetime.datetime(2024, 3, 15, 8, 15, 30, 250000, tzinfo=datetime.UTC)
T = int(WHEN.timestamp())  # 1710490530


def pv_of(keyword: str, telnr: int = 2) -> str:
    return PVS[keyword].format(tel=telnr)


def answer(*samples: tuple[int, int, Any]) -> list[dict[str, Any]]:
    return [{"meta": {"name": "pv"}, "data": [{"secs": s, "nanos": n, "val": v} for s, n, v in samples]}]


def night_data(telnr: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Every channel answers two samples around WHEN, the nearer one at T+2 s."""
    entries = [
        {
            "params": {"pv": pv_of(k, telnr)},
            "answer": answer((T - 20, 0, 1.0 + i), (T + 2, 340000000, 10.0 + i)),
        }
        for i, k in enumerate(PVS)
    ]
    return {PATH: entries}


@pytest.fixture
def fake() -> Iterator[FakeServices]:
    with FakeServices(night_data()) as server:
        yield server


def archiver(fake: FakeServices, timeout: float = 2.0, retries: int = 0, **kwargs: Any) -> EpicsArchiver:
    settings = HttpSettings(timeout=timeout, retries=retries, backoff=0.05, cache_seconds=600.0)
    return EpicsArchiver(fake.url + PATH, settings, **kwargs)


def test_nearest_sample_and_time_format(fake: FakeServices) -> None:
    samples = archiver(fake).samples(2, WHEN)
    assert list(samples) == list(PVS)
    assert samples["WXDOMHUM"] == WeatherSample(10.0, "08:15:32.34")
    assert samples["GUIDFWHM"] == WeatherSample(18.0, "08:15:32.34")
    assert all(not s.error for s in samples.values())


def test_the_query_asks_each_pv_for_one_minute_around_the_exposure(fake: FakeServices) -> None:
    archiver(fake).samples(2, WHEN)
    queries = [q for p, q in fake.requests if p == PATH]
    assert sorted(q["pv"] for q in queries) == sorted(pv_of(k) for k in PVS)
    assert {(q["from"], q["to"]) for q in queries} == {("2024-03-15T08:15:00Z", "2024-03-15T08:16:00Z")}
    assert {pv_of("WXOUTTMP"), pv_of("WXDOMTMP")} == {"k0:met:tempRaw", "k2:met:tempRaw"}


def test_one_service_per_telescope_made_when_needed(fake: FakeServices) -> None:
    weather = archiver(fake)
    assert weather.http_services() == []
    weather.samples(2, WHEN)
    weather.samples(2, WHEN + datetime.timedelta(minutes=5))
    assert [s.name for s in weather.http_services()] == ["archiver-k2"]
    weather.samples(1, WHEN)
    assert [s.name for s in weather.http_services()] == ["archiver-k2", "archiver-k1"]
    asked = {q["pv"] for _, q in fake.requests[18:]}
    # the k0 channels of telescope 1 have the same URL and window here: cached
    assert asked == {pv_of(k, 1) for k, pv in PVS.items() if pv.startswith("k{tel}")}


@pytest.mark.parametrize(
    ("nanos", "fraction", "expected"),
    [
        pytest.param(340000000, "archive", "08:15:32.34", id="archive-34"),
        pytest.param(50000000, "archive", "08:15:32.50", id="archive-leading-zero-bug"),
        pytest.param(50000000, "exact", "08:15:32.05", id="exact-05"),
        pytest.param(0, "archive", "08:15:32.00", id="archive-zero"),
        pytest.param(999999999, "exact", "08:15:32.99", id="exact-floor"),
    ],
)
def test_sample_time_follows_the_koaid_fraction_rule(nanos: int, fraction: str, expected: str) -> None:
    assert sample_time(T + 2, nanos, fraction) == expected


def test_the_archiver_fraction_setting(fake: FakeServices) -> None:
    fake.add(PATH, {"pv": pv_of("WXPRESS")}, answer((T, 50000000, 615.0)))
    assert archiver(fake, fraction="exact").samples(2, WHEN)["WXPRESS"] == WeatherSample(615.0, "08:15:30.05")
    with pytest.raises(ValueError, match="fraction"):
        EpicsArchiver(fake.url, fraction="round")


def test_query_window_of_a_naive_time_is_utc() -> None:
    assert query_window(WHEN.replace(tzinfo=None)) == query_window(WHEN)


def test_the_nine_channels_are_asked_at_once(fake: FakeServices) -> None:
    fake.latency = 0.2
    start = time.monotonic()
    samples = archiver(fake).samples(2, WHEN)
    elapsed = time.monotonic() - start
    assert all(s.value is not None for s in samples.values())
    assert elapsed < 4 * 0.2, f"nine channels took {elapsed:.2f} s (one after another: {9 * 0.2:.1f} s)"


def test_answers_are_cached_by_pv_and_window(fake: FakeServices) -> None:
    weather = archiver(fake)
    first = weather.samples(2, WHEN)
    assert fake.count(PATH) == 9
    assert weather.samples(2, WHEN + datetime.timedelta(microseconds=100)) == first
    assert fake.count(PATH) == 9
    weather.samples(2, WHEN + datetime.timedelta(seconds=1))
    assert fake.count(PATH) == 18


def test_an_empty_window_is_asked_again(fake: FakeServices) -> None:
    fake.add(PATH, {"pv": pv_of("WXWNDIR")}, [])
    weather = archiver(fake)
    assert weather.samples(2, WHEN)["WXWNDIR"] == WeatherSample(None, None)
    weather.samples(2, WHEN)
    assert fake.count(PATH) == 10


def test_no_data_is_not_an_error(fake: FakeServices) -> None:
    fake.add(PATH, {"pv": pv_of("WXWNDIR")}, [])
    fake.add(PATH, {"pv": pv_of("WXWNDSP")}, [{"meta": {}, "data": []}])
    samples = archiver(fake).samples(2, WHEN)
    assert samples["WXWNDIR"] == samples["WXWNDSP"] == WeatherSample(None, None)


BAD_ANSWERS = {
    "not-a-list": {"data": []},
    "first-not-object": ["x"],
    "no-data": [{"meta": {}}],
    "data-not-list": [{"data": "1,2,3"}],
    "entry-not-object": [{"data": [[T, 0, 1.0]]}],
    "nan": answer((T, 0, math.nan)),
    "infinity": answer((T, 0, math.inf)),
    "val-string": answer((T, 0, "12.5")),
    "val-bool": answer((T, 0, True)),
    "val-list": answer((T, 0, [1.0, 2.0])),
    "val-null": answer((T, 0, None)),
    "secs-float": answer((T + 0.5, 0, 1.0)),
    "secs-string": answer((str(T), 0, 1.0)),
    "secs-huge": answer((10**30, 0, 1.0)),
    "nanos-negative": answer((T, -1, 1.0)),
    "nanos-too-big": answer((T, 10**9, 1.0)),
    "one-bad-among-good": answer((T, 0, 1.0), (T + 1, 0, "x")),
}


@pytest.mark.parametrize("bad", list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_a_malformed_channel_is_an_error_the_others_count(fake: FakeServices, bad: Any) -> None:
    fake.add(PATH, {"pv": pv_of("WXDWPT")}, bad)
    samples = archiver(fake).samples(2, WHEN)
    assert samples["WXDWPT"].value is None and samples["WXDWPT"].time is None
    assert "archiver-k2" in samples["WXDWPT"].error and "k0:met:dewpointRaw" in samples["WXDWPT"].error
    assert len(samples["WXDWPT"].error) <= 300
    others = {k: s for k, s in samples.items() if k != "WXDWPT"}
    assert all(s.value is not None and not s.error for s in others.values())


def test_nearest_sample_rejects_nan_directly() -> None:
    with pytest.raises(ValueError, match="finite"):
        nearest_sample([{"data": [{"secs": T, "nanos": 0, "val": float("nan")}]}], WHEN)


def test_a_failed_channel_among_good_ones(fake: FakeServices) -> None:
    fake.add(PATH, {"pv": pv_of("GUIDFWHM")}, answer((T, 0, 0.5)))
    weather = archiver(fake)
    service = weather.service(2)
    original = service.get_json

    def flaky(path: str, params: Any = None, *, cache: bool = True) -> Any:
        if params and params["pv"] == pv_of("WXOUTHUM"):
            raise ServiceUnavailable(service.name, "HTTP 500 for this channel")
        return original(path, params, cache=cache)

    service.get_json = flaky  # type: ignore[method-assign]
    samples = weather.samples(2, WHEN)
    assert samples["WXOUTHUM"] == WeatherSample(None, None, error="archiver-k2: HTTP 500 for this channel")
    assert samples["GUIDFWHM"] == WeatherSample(0.5, "08:15:30.00")


def test_a_huge_list_is_read_and_the_nearest_sample_found(fake: FakeServices) -> None:
    data = [(T - 30 + i // 2000, (i % 2000) * 500000, float(i)) for i in range(120_000)]
    fake.add(PATH, {"pv": pv_of("WXPRESS")}, answer(*data))
    start = time.monotonic()
    sample = archiver(fake, timeout=10.0).samples(2, WHEN)["WXPRESS"]
    assert time.monotonic() - start < 5.0
    assert sample.value == 60000.0 and sample.time == "08:15:30.00"


def test_an_answer_over_the_size_limit_is_an_error(fake: FakeServices) -> None:
    data = [(T, 0, 1.0)] * 250_000  # about 9 MB of JSON
    fake.add(PATH, {"pv": pv_of("WXPRESS")}, answer(*data))
    samples = archiver(fake, timeout=10.0).samples(2, WHEN)
    assert "larger than" in samples["WXPRESS"].error
    assert samples["WXOUTTMP"].value is not None


def test_garbage_from_every_channel_is_a_bad_answer(fake: FakeServices) -> None:
    fake.garbage = True
    with pytest.raises(BadAnswer):
        archiver(fake).samples(2, WHEN)


@pytest.mark.parametrize("how", ["refused", "slow", "status"])
def test_an_archiver_that_is_down_fails_once_then_costs_no_request(fake: FakeServices, how: str) -> None:
    if how == "refused":
        fake.go_down()
    elif how == "slow":
        fake.slow = 1.0
    else:
        fake.status = 503
    weather = archiver(fake, timeout=0.5, retries=2)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        weather.samples(2, WHEN)
    assert time.monotonic() - start < 0.5 + 0.7  # one timeout, not nine
    requests = weather.service(2).requests
    assert 9 <= requests <= 27
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="skipped"):
        weather.samples(2, WHEN + datetime.timedelta(seconds=10))
    assert time.monotonic() - start < 0.05
    assert weather.service(2).requests == requests


def test_after_an_outage_the_first_file_gets_every_channel(fake: FakeServices) -> None:
    """Once the breaker's time is over, one channel tries first; when it answers, the rest follow."""
    settings = HttpSettings(timeout=0.5, retries=0, breaker_seconds=0.2, cache_seconds=0)
    weather = EpicsArchiver(fake.url + PATH, settings)
    fake.status = 503
    with pytest.raises(ServiceUnavailable):
        weather.samples(2, WHEN)
    fake.status = 0
    time.sleep(0.25)
    samples = weather.samples(2, WHEN)
    assert all(s.value is not None and not s.error for s in samples.values()), samples


def test_close_stops_the_threads(fake: FakeServices) -> None:
    weather = archiver(fake)
    weather.samples(2, WHEN)
    weather.close()
    assert weather.samples(2, WHEN)["WXPRESS"].value is not None  # cached; the pool is made again


def test_an_unknown_telescope_is_refused(fake: FakeServices) -> None:
    with pytest.raises(ValueError, match="not 1 or 2"):
        archiver(fake).samples(3, WHEN)


# set_weather and set_oa ------------------------------------------------------------------------------
NIRC2 = Registry.default().instrument("NIRC2")
HEADER = Header.from_mapping({"DATE-OBS": "2024-03-15", "UTC": "08:15:30.25"})


def weather_ctx(weather: Any = None, staff: Any = None) -> Context:
    return Context(instrument="NIRC2", plugin=NIRC2, services=Services(weather=weather, staff=staff))


def cards(result: Any) -> dict[str, Any]:
    return {c.keyword: c.value for c in result.cards}


def test_set_weather_writes_the_samples(fake: FakeServices) -> None:
    result = set_weather(HEADER, weather_ctx(archiver(fake)))
    values = cards(result)
    assert values["WXDOMHUM"] == 10.0 and values["GUIDFWHM"] == 18.0
    assert values["WXTIME"] == values["GUIDTIME"] == "08:15:32.34"
    assert result.issues == ()


def test_set_weather_warns_when_some_channels_failed(fake: FakeServices) -> None:
    fake.add(PATH, {"pv": pv_of("WXWNDSP")}, answer((T, 0, math.nan)))
    result = set_weather(HEADER, weather_ctx(archiver(fake)))
    assert [i.code for i in result.issues] == ["EPICS_ARCHIVER_WARNING"]
    assert "WXWNDSP" in result.issues[0].message
    values = cards(result)
    assert values["WXWNDSP"] == "null" and values["WXWNDIR"] == 16.0


@pytest.mark.parametrize("how", ["refused", "garbage"])
def test_set_weather_warns_when_the_service_failed(fake: FakeServices, how: str) -> None:
    if how == "refused":
        fake.go_down()
    else:
        fake.garbage = True
    result = set_weather(HEADER, weather_ctx(archiver(fake, timeout=0.5)))
    assert [i.code for i in result.issues] == ["WEATHER_DATA_FAIL"]
    values = cards(result)
    assert all(v == "null" for v in values.values())


class FailingStaff:
    def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str | None:
        raise ServiceUnavailable("keck-api", "no answer within 5 s")


class Staff:
    def observing_assistant(self, hst_date: datetime.date, telnr: int) -> str | None:
        assert (hst_date, telnr) == (datetime.date(2024, 3, 14), 2)
        return "jdoe"


def test_set_oa_warns_when_the_staff_service_fails() -> None:
    result = set_oa(HEADER, weather_ctx(staff=FailingStaff()))
    assert cards(result) == {"OA": "None"}
    assert [(i.code, i.severity.name) for i in result.issues] == [("NIGHT_STAFF_ERROR", "WARN")]
    assert "keck-api" in result.issues[0].message


def test_set_oa_names_the_assistant() -> None:
    result = set_oa(HEADER, weather_ctx(staff=Staff()))
    assert cards(result) == {"OA": "jdoe"} and result.issues == ()
