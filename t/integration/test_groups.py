"""nchan's channel group accounting: pulse_channel_group_accounting,
pulse_group_max_* and pulse_group_location, side by side with the
installed nchan where they should agree; the counts over two workers and
what Pulse does differently, alone."""

import re

import pytest
import requests

from clients import sse
from conftest import side_by_side, wait_for

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    pulse_channel_group_accounting on;
    location ~ ^/pub/(\\w+)/(\\w+)$ {
        pulse_publisher; pulse_channel_group $1; pulse_channel_id $2;
        pulse_group_max_messages $arg_max_messages;
        pulse_group_max_channels $arg_max_channels;
        pulse_group_max_messages_memory $arg_max_memory;
    }
    location ~ ^/sub/(\\w+)/(\\w+)$ {
        pulse_subscriber; pulse_channel_group $1; pulse_channel_id $2;
        pulse_group_max_subscribers $arg_max_subs;
        pulse_group_max_channels $arg_max_channels;
    }
    location ~ ^/group/(\\w+)$ {
        pulse_group_location;
        pulse_channel_group $1;
        pulse_group_max_channels $arg_max_channels;
        pulse_group_max_subscribers $arg_max_subs;
        pulse_group_max_messages $arg_max_messages;
        pulse_group_max_messages_memory $arg_max_messages_mem;
    }
    location ~ ^/readonly/(\\w+)$ {
        pulse_group_location get;
        pulse_channel_group $1;
    }
    location ~ ^/unaccounted/(\\w+)$ {
        pulse_group_location;
        pulse_channel_group $1;
        pulse_channel_group_accounting off;
    }
}
"""


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return side_by_side(nginx_factory, CONFIG, workers=1)


def both(servers, fn):
    out = {flavor: fn(n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    return out["pulse"]


def answer(r):
    return r.status_code, r.headers.get("Content-Type"), \
        r.text.replace("nchan_", "pulse_")


# The bytes a message takes differ (each server's own record): compared
# by shape.
MEMORY = re.compile(r'(shared memory used by messages: |\n  "messages_memory": '
                    r'|\nmessages_memory: |\n  <messages_memory>)[1-9]\d*')


def shape(r):
    status, ctype, text = answer(r)
    return status, ctype, MEMORY.sub(r"\1<N>", text)


@pytest.mark.parametrize("accept", ["text/plain", "application/json",
                                    "text/yaml", "text/xml"])
def test_group_info_in_every_format(servers, accept):
    h = {"Accept": accept}
    both(servers, lambda n: answer(requests.get(n.url("/group/empty"),
                                                headers=h)))

    def populated(n):
        group = "f" + re.sub(r"\W", "", accept)
        requests.post(n.url("/pub/%s/a" % group), data="x")
        requests.post(n.url("/pub/%s/b" % group), data="yy")
        requests.post(n.url("/pub/%s/b" % group), data="zzz")
        return shape(requests.get(n.url("/group/" + group), headers=h))
    status, _, text = both(servers, populated)
    assert status == 200 and "<N>" in text


def test_limits_refuse_publishes_with_nchan_reasons(servers):
    def run(n):
        out = []
        out.append(answer(requests.post(n.url("/pub/lim/a?max_messages=2"),
                                        data="1")))
        out.append(requests.post(n.url("/pub/lim/a"), data="2").status_code)
        # the limit set by the first request stays
        out.append(answer(requests.post(n.url("/pub/lim/a"), data="3")))
        out.append(answer(requests.post(
            n.url("/pub/mem/a?max_memory=1k"), data="x" * 2000)))
        out.append(answer(requests.post(n.url("/pub/lim/a?max_messages=x"),
                                        data="4")))
        return [o if isinstance(o, int) else o[:1] + o[2:] for o in out]
    out = both(servers, run)
    assert out[2] == (403, "Group limit reached for number of messages.")
    assert out[3] == (403, "Group limit reached for memory used by messages.")
    assert out[4] == (403, "invalid pulse_group_max_messages value")


def test_a_new_channel_past_the_channel_limit(servers):
    def run(n):
        first = requests.post(n.url("/pub/chl/a"), data="1")
        second = requests.post(n.url("/pub/chl/b?max_channels=1"), data="1")
        return first.status_code, second.status_code, second.text
    assert both(servers, run) == (
        202, 403, "Group limit reached for number of channels.")
    # Unlike nchan, the channel the group has still takes publishes (nchan
    # refuses every publish of a group at its limit), and a limit of N
    # channels allows N (nchan allows N - 1).
    pulse = servers["pulse"]
    assert requests.post(pulse.url("/pub/chl/a"), data="2").status_code == 202
    assert requests.post(pulse.url("/pub/chn/a?max_channels=2"),
                         data="1").status_code == 202
    assert requests.post(pulse.url("/pub/chn/b"), data="1").status_code == 202
    assert requests.post(pulse.url("/pub/chn/c"), data="1").status_code == 403


def test_subscribers_past_the_limit_are_refused(servers):
    def run(n):
        subs = [sse(n.url("/sub/sl/a?max_subs=2")) for _ in range(2)]
        try:
            wait_for(lambda: "subscribers: 2" in
                     requests.get(n.url("/group/sl")).text, 5, "2 subs")
            third = requests.get(n.url("/sub/sl/a"),
                                 headers={"Accept": "text/event-stream"},
                                 timeout=5)
            return [s.response.status for s in subs], third.status_code
        finally:
            for s in subs:
                s.close()
    assert both(servers, run) == ([200, 200], 403)
    pulse = servers["pulse"]
    wait_for(lambda: "subscribers: 0" in
             requests.get(pulse.url("/group/sl")).text, 5, "no subs")
    s = sse(pulse.url("/sub/sl/a"))
    s.close()
    assert s.response.status == 200


def test_post_sets_limits_and_delete_empties_the_group(servers):
    def run(n):
        requests.post(n.url("/pub/del/a"), data="1")
        requests.post(n.url("/pub/del/b"), data="1")
        set_ = requests.post(
            n.url("/group/del?max_channels=5&max_subs=1&max_messages=7"
                  "&max_messages_mem=1k"), headers={"Accept": "text/json"})
        bad = requests.post(n.url("/group/del?max_subs=-1"))
        deleted = requests.delete(n.url("/group/del"))
        return shape(set_), answer(bad), shape(deleted)
    set_, bad, deleted = both(servers, run)
    assert '"channels": 5' in set_[2] and '"messages_memory": 1024' in \
        set_[2]
    assert bad == (403, "text/plain", "invalid pulse_group_max_subscribers "
                   "value")
    assert deleted[0] == 200 and "channels: 2" in deleted[2]
    # nchan 1.3.6 still has the channels and counts them afterwards; in
    # Pulse they are gone
    assert requests.get(servers["pulse"].url("/pub/del/a")).status_code == 404
    text = requests.get(servers["pulse"].url("/group/del")).text
    assert text.startswith("channels: 0\r\nsubscribers: 0\r\nmessages: 0\r\n")


def test_deleting_a_group_ends_its_subscribers(servers):
    pulse = servers["pulse"]
    s = sse(pulse.url("/sub/dg/a"))
    wait_for(lambda: "subscribers: 1" in
             requests.get(pulse.url("/group/dg")).text, 5, "subscriber")
    assert requests.delete(pulse.url("/group/dg")).status_code == 200
    s.expect_end(5)


def test_methods_options_and_accounting_off(servers):
    def run(n):
        return (answer(requests.post(n.url("/readonly/g"))),
                requests.get(n.url("/readonly/g")).status_code,
                answer(requests.get(n.url("/unaccounted/g"))),
                requests.options(n.url("/group/g")).headers.get("Allow"))
    ro_post, ro_get, off, allow = both(servers, run)
    assert ro_post[0] == 403 and ro_get == 200
    assert off == (403, "text/plain", "Channel group accounting is disabled.")
    assert allow == "GET, POST, DELETE"


def test_counts_are_zone_wide_over_two_workers(nginx_factory):
    n = nginx_factory(CONFIG)
    subs = []
    try:
        while len(n.connections_per_worker()) < 2 and len(subs) < 40 \
                or len(subs) < 6:
            subs.append(sse(n.url("/sub/two/c%d" % (len(subs) % 3))))
        for i in range(3):
            requests.post(n.url("/pub/two/c%d" % i), data="m")
        wait_for(lambda: requests.get(n.url("/group/two")).text.startswith(
            "channels: 3\r\nsubscribers: %d\r\nmessages: 3\r\n" % len(subs)),
            5, "zone-wide counts")
        # the limit one worker sets, the other enforces
        requests.post(n.url("/group/two?max_subs=%d" % len(subs)))
        for _ in range(4):
            r = requests.get(n.url("/sub/two/c0"),
                             headers={"Accept": "text/event-stream"},
                             timeout=5)
            assert r.status_code == 403
    finally:
        for s in subs:
            s.close()


def test_bad_group_location_arguments_fail_nginx_t(nginx_factory):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    location /g { pulse_group_location read; }
}
""", start=False)
    r = n.test_config()
    assert r.returncode != 0
    assert 'pulse_group_location: "read" is not get, set, delete or off' \
        in r.stderr
