"""Long-poll and interval-poll subscribers: immediate answers, holding,
the Last-Modified/Etag resume loop, compound and custom etags, 408, 410,
304 (docs/protocol.md §5)."""

import time
from email.utils import formatdate

import requests

from clients import Stream

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber longpoll; pulse_channel_id $1; }
    location ~ ^/compound/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_subscriber_compound_etag_message_id on;
    }
    location ~ ^/custom/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_subscriber_message_id_custom_etag_header X-Msg-Tag;
    }
    location ~ ^/timeout/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_subscriber_timeout 1;
    }
    location ~ ^/interval/(.*)$ {
        pulse_subscriber intervalpoll; pulse_channel_id $1;
    }
    location ~ ^/newest/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_subscriber_first_message newest;
    }
}
"""


def pub(nginx, chan, body, **headers):
    r = requests.post(nginx.url("/pub/" + chan), data=body, headers=headers)
    assert r.status_code in (201, 202)
    return r


def test_answers_at_once_when_buffered(nginx):
    pub(nginx, "now", "hello", **{"Content-Type": "text/x-test"})
    r = requests.get(nginx.url("/sub/now"))
    assert r.status_code == 200
    assert r.text == "hello"
    assert r.headers["Content-Type"] == "text/x-test"
    assert r.headers["Etag"] == "0"
    assert r.headers["Vary"] == "If-None-Match, If-Modified-Since"
    lm = r.headers["Last-Modified"]
    assert abs(time.time() - time.mktime(
        time.strptime(lm, "%a, %d %b %Y %H:%M:%S GMT")) + time.timezone) < 5
    assert "Cache-Control" not in r.headers


def test_no_content_type_when_published_without_one(nginx):
    requests.post(nginx.url("/pub/untyped"), data=b"raw",
                  headers={"Content-Type": ""})
    r = requests.get(nginx.url("/sub/untyped"))
    assert r.content == b"raw"
    assert "Content-Type" not in r.headers


def test_resume_loop_gets_every_message_once(nginx):
    for i in range(5):
        pub(nginx, "loop", "m%d" % i)
    got = []
    headers = {}
    for _ in range(5):
        r = requests.get(nginx.url("/sub/loop"), headers=headers)
        assert r.status_code == 200
        got.append(r.text)
        headers = {"If-Modified-Since": r.headers["Last-Modified"],
                   "If-None-Match": r.headers["Etag"]}
    assert got == ["m%d" % i for i in range(5)]
    # caught up: the next poll waits, and gets the next publish
    s = Stream(nginx.url("/sub/loop"), headers)
    time.sleep(0.2)
    pub(nginx, "loop", "m5")
    s.read_until(lambda b: b == b"m5")
    assert s.response.status == 200
    s.close()


def test_waits_for_the_next_message(nginx):
    s = Stream(nginx.url("/newest/wait"))
    try:
        time.sleep(0.3)
        pub(nginx, "wait", "late")
        assert s.read_until(lambda b: b == b"late") == b"late"
    finally:
        s.close()


def test_compound_etag(nginx):
    r0 = pub(nginx, "cmp", "a")
    mid = r0.text.rsplit(": ", 1)[1]
    pub(nginx, "cmp", "b")
    r = requests.get(nginx.url("/compound/cmp"))
    assert r.headers["Etag"] == mid
    assert "Last-Modified" not in r.headers
    r2 = requests.get(nginx.url("/compound/cmp"),
                      headers={"If-None-Match": r.headers["Etag"]})
    assert r2.text == "b"


def test_custom_etag_header(nginx):
    pub(nginx, "cust", "a")
    r = requests.get(nginx.url("/custom/cust"), headers={"Origin": "http://o"})
    assert r.headers["X-Msg-Tag"] == "0"
    assert "Etag" not in r.headers
    assert r.headers["Access-Control-Expose-Headers"] == \
        "Last-Modified, X-Msg-Tag, Content-Type"


def test_timeout_is_408(nginx):
    r = requests.get(nginx.url("/timeout/quiet"))
    assert r.status_code == 408
    pub(nginx, "quiet", "x")
    assert requests.get(nginx.url("/timeout/quiet")).text == "x"


def test_delete_is_410(nginx):
    pub(nginx, "gone", "x")
    r = requests.get(nginx.url("/sub/gone"))
    s = Stream(nginx.url("/sub/gone"),
               {"If-Modified-Since": r.headers["Last-Modified"],
                "If-None-Match": r.headers["Etag"]})
    try:
        time.sleep(0.2)
        assert requests.delete(nginx.url("/pub/gone")).status_code == 200
        assert s.head().status == 410
    finally:
        s.close()


def test_interval_poll_is_304_when_nothing_newer(nginx):
    r = requests.get(nginx.url("/interval/ip"))
    assert r.status_code == 304
    pub(nginx, "ip", "x")
    r = requests.get(nginx.url("/interval/ip"))
    assert r.status_code == 200 and r.text == "x"
    r2 = requests.get(nginx.url("/interval/ip"),
                      headers={"If-Modified-Since": r.headers["Last-Modified"],
                               "If-None-Match": r.headers["Etag"]})
    assert r2.status_code == 304
    assert r2.headers["Etag"] == r.headers["Etag"]
    assert r2.headers["Last-Modified"] == r.headers["Last-Modified"]


def test_bad_ids_are_400(nginx):
    now = formatdate(usegmt=True)
    for h in ({"If-Modified-Since": now, "If-None-Match": "x"},
              {"If-Modified-Since": now},
              {"If-None-Match": "1:2:3"}):
        r = requests.get(nginx.url("/sub/badid"), headers=h)
        assert r.status_code == 400, h
    pub(nginx, "badid", "fine")
    assert requests.get(nginx.url("/sub/badid")).text == "fine"


def test_many_waiting_pollers_across_workers(nginx):
    polls = [Stream(nginx.url("/newest/many")) for _ in range(40)]
    try:
        time.sleep(0.3)
        r = pub(nginx, "many", "all")
        assert r.status_code == 201
        assert "active subscribers: 40" in r.text
        for s in polls:
            assert s.read_until(lambda b: b == b"all") == b"all"
    finally:
        for s in polls:
            s.close()
