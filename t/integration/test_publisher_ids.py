"""pulse_publisher_message_id: a trusted publisher supplies the message id
(Pulse-Message-Id: time:tag), so every node gives an event the same id;
duplicates and older ids are answered without storing twice."""

import requests

from clients import parse_sse, sse

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
    }
    location ~ ^/untrusted/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""

H = "Pulse-Message-Id"


def info(nginx, chan):
    return requests.get(nginx.url("/pub/" + chan),
                        headers={"Accept": "text/json"}).json()


def test_supplied_ids_are_used(nginx):
    s = sse(nginx.url("/sub/ids"))
    try:
        r = requests.post(nginx.url("/pub/ids"), data="a",
                          headers={H: "1700000000:5"})
        assert r.status_code == 201
        assert r.text.endswith("last message id: 1700000000:5")
        body = s.read_until(lambda b: b"data: a\n\n" in b)
        assert parse_sse(body)[1]["id"] == "1700000000:5"
    finally:
        s.close()
    lp = requests.get(nginx.url("/sub/ids"))
    assert lp.headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert lp.headers["Etag"] == "5"


def test_duplicates_and_older_ids_are_idempotent(nginx):
    for body, mid, code in (("one", "1700000100:0", 202),
                            ("one again", "1700000100:0", 202),
                            ("older", "1700000099:9", 202),
                            ("two", "1700000100:1", 202)):
        r = requests.post(nginx.url("/pub/dup"), data=body,
                          headers={H: mid})
        assert r.status_code == code
    i = info(nginx, "dup")
    assert i["messages"] == 2
    assert i["last_message_id"] == "1700000100:1"
    r = requests.get(nginx.url("/sub/dup?last_event_id=1700000100:0"))
    assert r.text == "two"
    # ids assigned by the store afterwards stay after the supplied ones
    r = requests.post(nginx.url("/pub/dup"), data="three")
    assert info(nginx, "dup")["last_message_id"] != "1700000100:1"


def test_malformed_id_is_400(nginx):
    for bad in ("abc", "1:2:3", "1:[0],1", "-5:0"):
        r = requests.post(nginx.url("/pub/bad"), data="x", headers={H: bad})
        assert r.status_code == 400, bad
        assert r.text.startswith("Message ID invalid")
    assert requests.post(nginx.url("/pub/bad"), data="ok").status_code == 202


def test_untrusted_locations_ignore_the_header(nginx):
    r = requests.post(nginx.url("/untrusted/u"), data="x",
                      headers={H: "1000:0"})
    assert r.status_code == 202
    assert not r.text.endswith("1000:0")
