"""One gateway, one receiver view: topic filters name the gateway (the level of the first `+`),
views are bounded, and every receiver family, the page and `listen` show each view."""

from __future__ import annotations

import pytest

from exporter.outputs.prometheus import receiver_families
from exporter.receivers.topics import DEFAULT_TOPICS, TopicFilters, filter_problem
from exporter.receivers.views import GIVES_WAY_AFTER, ReceiverStats, Views
from exporter.web.status import _receiver


@pytest.mark.parametrize(
    ("topic", "gateway"),
    [
        ("wmbus/kitchen/telegram", "kitchen"),  # ESPHome wmbus_radio, Kustonium's bridge
        ("wmbusgw/wmbus/raw", "wmbusgw"),  # ESPHome version_4, header not parsed
        ("wmbusgw/wmbus/raw/12345678", "wmbusgw"),  # ... parsed: the meter ID follows
        ("rtl_433/pi/devices/2/Wireless-MBus/12345678/data", "pi"),  # the host, not the type
        ("rtl_433/pi/devices/2/Wireless-MBus/12345678/rssi", None),  # not subscribed
        ("wmbus/kitchen/diag/summary", None),
        ("$SYS/wmbus/raw", None),  # a wildcard never matches the broker's own topics
    ],
)
def test_the_default_filters_name_each_gateway(topic: str, gateway: str | None) -> None:
    assert TopicFilters(DEFAULT_TOPICS).gateway(topic) == gateway


def test_a_filter_without_a_wildcard_names_no_gateway() -> None:
    filters = TopicFilters(("home/esp/telegram", "site/+/+/frame"))
    assert filters.gateway("home/esp/telegram") is None
    assert filters.gateway("site/a/b/frame") == "a"  # the first `+`
    many = TopicFilters(("x/+",))
    for number in range(5000):  # the memory of topics is bounded
        assert many.gateway(f"x/{number}") == str(number)
    assert len(many._cache) <= 1024


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a/#/b", "'#' stands alone as its last level"),
        ("a/b#", "'#' stands alone as its last level"),
        ("a/x+/b", "'+' stands alone as a level"),
        ("", "a topic filter is 1-200 characters"),
        ("a" * 201, "a topic filter is 1-200 characters"),
    ],
)
def test_bad_filters_are_explained(text: str, words: str) -> None:
    assert words in (filter_problem(text) or "")


def test_good_filters_pass() -> None:
    for text in (*DEFAULT_TOPICS, "#", "+/+", "a/b", "a/+/#"):
        assert filter_problem(text) is None


def test_views_are_bounded_and_the_longest_silent_gives_way_after_an_hour() -> None:
    views = Views(ReceiverStats("gw", "mqtt://broker", gateways_refused=0), limit=2)
    assert views.of("a", 0.0).name == "gw/a"
    assert views.of("b", 1.0).name == "gw/b"
    assert views.of("c", 2.0) is views.base  # all taken, none silent for an hour
    assert views.of("", 2.0) is views.base  # no name
    assert views.of("\x00evil", 2.0) is views.base
    assert views.base.gateways_refused == 3
    views.of("b", GIVES_WAY_AFTER)  # b speaks again; a stays silent
    assert views.of("c", 1.0 + GIVES_WAY_AFTER).name == "gw/c"  # a gives way
    assert [view.name for view in views.snapshot()] == ["gw", "gw/b", "gw/c"]
    assert views.of(None, 0.0) is views.base


def test_a_gateways_view_shares_the_connection_of_its_receiver() -> None:
    views = Views(ReceiverStats("gw", "mqtt://broker", gateways_refused=0))
    views.of("roof", 0.0).frames += 3
    views.base.up, views.base.reconnects = False, 2
    views.base.down_reason, views.base.down_code = "the connection was lost", "broker"
    _, roof = views.snapshot()
    assert (roof.name, roof.frames, roof.up, roof.reconnects) == ("gw/roof", 3, False, 2)
    assert (roof.down_reason, roof.down_code) == ("the connection was lost", "broker")
    assert roof.gateways_refused is None and roof.dropped is None
    assert "gateway roof" in roof.description


def test_every_receiver_family_has_each_view_and_the_mqtt_counts() -> None:
    own = ReceiverStats("gw", "mqtt://b", up=True, dropped=5, gateways_refused=2)
    roof = ReceiverStats("gw/roof", "gateway roof via mqtt://b", frames=7, up=True)
    stick = ReceiverStats("usb", "/dev/ttyUSB0", up=True)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in receiver_families([own, roof, stick])
        for sample in family.samples
    }
    assert samples[("amiplus_receiver_frames_total", (("receiver", "gw/roof"),))] == 7
    assert samples[("amiplus_receiver_up", (("receiver", "gw/roof"),))] == 1
    assert samples[("amiplus_receiver_messages_dropped_total", (("receiver", "gw"),))] == 5
    assert samples[("amiplus_receiver_gateways_refused_total", (("receiver", "gw"),))] == 2
    named = {labels for (name, labels) in samples if name.startswith("amiplus_receiver_mess")}
    assert named == {(("receiver", "gw"),)}  # only the receiver that sheds
    shown = _receiver(own, private=False)
    assert (shown["messages_dropped"], shown["gateways_refused"]) == (5, 2)
    assert "messages_dropped" not in _receiver(stick, private=False)
