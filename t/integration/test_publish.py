"""Publisher API: POST/PUT/GET/DELETE/OPTIONS, channel info formats, bodies
(empty, binary, spooled to a file, oversize) and the error answers, each
followed by proof that the server still serves."""

import re

import requests

from clients import Stream, parse_sse, sse
from conftest import wait_for

NGINX_CONFIG = """
client_max_body_size 2m;
client_body_buffer_size 16k;
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/short/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_max_channel_id_length 8;
    }
    location ~ ^/grouped/(.*)$ {
        pulse_publisher; pulse_channel_id $1; pulse_channel_group $arg_g;
    }
    location ~ ^/evpub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_eventsource_event fixed;
    }
    location = /nochannel { pulse_publisher; }
    location ~ ^/cors/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_access_control_allow_origin "https://a.example https://b.example";
    }
    location ~ ^/multi/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_channel_id_split_delimiter ",";
    }
    location ~ ^/subonly/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/varlen/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length $arg_len;
        pulse_message_timeout $arg_ttl;
    }
    location ~ ^/nostore/(.*)$ {
        pulse_publisher; pulse_channel_id $1; pulse_store_messages off;
    }
    location ~ ^/subpoll/(.*)$ {
        pulse_subscriber intervalpoll; pulse_channel_id $1;
    }
}
"""

ID = re.compile(r"^\d+:\d+$")


def healthy(nginx):
    r = requests.post(nginx.url("/pub/health"), data="ok")
    assert r.status_code in (201, 202)
    assert requests.get(nginx.url("/pub/health")).status_code == 200


def test_publish_then_info_in_every_format(nginx):
    r = requests.post(nginx.url("/pub/fmt"), data="a")
    assert r.status_code == 202
    assert r.headers["Content-Type"] == "text/plain"
    m = re.fullmatch(r"queued messages: 1\r\nlast requested: -1 sec\. ago\r\n"
                     r"active subscribers: 0\r\nlast message id: (\d+:0)",
                     r.text)
    assert m, repr(r.text)
    mid = m.group(1)
    r = requests.put(nginx.url("/pub/fmt"), data="b")  # PUT == POST
    assert r.status_code == 202
    mid2 = r.text.rsplit(": ", 1)[1]
    assert ID.match(mid2) and mid2 != mid

    j = requests.get(nginx.url("/pub/fmt"),
                     headers={"Accept": "application/json"})
    assert j.headers["Content-Type"] == "text/json"
    assert j.text == ('{"messages": 2, "requested": -1, "subscribers": 0, '
                      '"last_message_id": "%s" }' % mid2)
    x = requests.get(nginx.url("/pub/fmt"), headers={"Accept": "text/xml"})
    assert x.headers["Content-Type"] == "text/xml"
    assert x.text == ('<?xml version="1.0" encoding="UTF-8" ?>\r\n<channel>\r\n'
                      '  <messages>2</messages>\r\n  <requested>-1</requested>'
                      '\r\n  <subscribers>0</subscribers>\r\n'
                      '  <last_message_id>%s</last_message_id>\r\n</channel>'
                      % mid2)
    y = requests.get(nginx.url("/pub/fmt"),
                     headers={"Accept": "text/yaml, */*"})
    assert y.headers["Content-Type"] == "text/yaml"
    assert y.text == ('---\r\nmessages: 2\r\nrequested: -1\r\nsubscribers: 0'
                      '\r\nlast_message_id: "%s"\r\n\r\n' % mid2)


def test_info_of_missing_channel_is_404(nginx):
    r = requests.get(nginx.url("/pub/never-published"))
    assert r.status_code == 404
    assert r.text == ""


def test_201_when_a_subscriber_gets_it(nginx):
    s = sse(nginx.url("/sub/live"))
    try:
        r = requests.post(nginx.url("/pub/live"), data="x")
        assert r.status_code == 201
        assert "active subscribers: 1" in r.text
        s.read_until(lambda b: b"data: x\n\n" in b)
    finally:
        s.close()


def test_content_type_and_event_are_stored(nginx):
    requests.post(nginx.url("/pub/meta"), data=b"{}",
                  headers={"Content-Type": "application/json",
                           "X-EventSource-Event": "update"})
    r = requests.get(nginx.url("/sub/meta"))
    assert r.headers["Content-Type"] == "application/json"
    s = sse(nginx.url("/sub/meta"), {"Last-Event-ID": "1:0"})
    try:
        body = s.read_until(lambda b: b"data: {}\n\n" in b)
        assert parse_sse(body)[1]["event"] == "update"
    finally:
        s.close()


def test_location_event_overrides_header(nginx):
    requests.post(nginx.url("/evpub/ev"), data="x",
                  headers={"X-EventSource-Event": "ignored"})
    s = sse(nginx.url("/sub/ev"))
    try:
        body = s.read_until(lambda b: b"data: x\n\n" in b)
        assert b"event: fixed\n" in body
    finally:
        s.close()


def test_empty_and_binary_bodies(nginx):
    assert requests.post(nginx.url("/pub/empty"), data=b"").status_code == 202
    r = requests.get(nginx.url("/sub/empty"))
    assert r.status_code == 200 and r.content == b""
    blob = bytes(range(256)) * 4 + b"\x00\r\n\x00"
    requests.post(nginx.url("/pub/bin"), data=blob,
                  headers={"Content-Type": "application/octet-stream"})
    r = requests.get(nginx.url("/sub/bin"))
    assert r.content == blob


def test_body_spooled_to_a_temp_file(nginx):
    big = (b"0123456789abcdef" * 4096) * 8  # 512 KiB > client_body_buffer_size
    assert requests.post(nginx.url("/pub/big"), data=big).status_code == 202
    r = requests.get(nginx.url("/sub/big"))
    assert r.content == big


def test_oversize_body_is_413(nginx):
    r = requests.post(nginx.url("/pub/huge"), data=b"x" * (3 * 1024 * 1024))
    assert r.status_code == 413
    healthy(nginx)


def test_missing_channel_id_is_404(nginx):
    r = requests.post(nginx.url("/nochannel"), data="x")
    assert r.status_code == 404
    assert r.text == "No channel id provided."
    r = requests.post(nginx.url("/pub/"), data="x")
    assert r.status_code == 404
    healthy(nginx)


def test_overlong_channel_id_is_403(nginx):
    assert requests.post(nginx.url("/short/12345678"),
                         data="x").status_code == 202
    r = requests.post(nginx.url("/short/123456789"), data="x")
    assert r.status_code == 403
    healthy(nginx)


def test_bad_groups_are_403(nginx):
    assert requests.post(nginx.url("/grouped/c?g=t1"),
                         data="x").status_code == 202
    assert requests.post(nginx.url("/grouped/c?g=m"),
                         data="x").status_code == 403
    assert requests.post(nginx.url("/grouped/c?g=a/b"),
                         data="x").status_code == 403
    # groups separate channels
    assert requests.get(nginx.url("/grouped/c?g=t2")).status_code == 404
    healthy(nginx)


def test_delete_ends_subscribers_with_410(nginx):
    requests.post(nginx.url("/pub/del"), data="x")
    s = sse(nginx.url("/sub/del"), {"Last-Event-ID": "1:0"})
    lp = Stream(nginx.url("/sub/del"), {"If-None-Match": "%s" % "9999999999:0"})
    try:
        s.read_until(lambda b: b"data: x\n\n" in b)
        # the long-poll has joined too (under ASan it can come late)
        wait_for(lambda: "active subscribers: 2" in
                 requests.get(nginx.url("/pub/del")).text, 10,
                 "the long-poll joined")
        r = requests.delete(nginx.url("/pub/del"))
        assert r.status_code == 200
        assert "queued messages: 1" in r.text
        body = s.read_to_end()
        assert body.endswith(b":410: 410 Gone\n\n")
        assert s.finished  # the chunked stream ended properly
        assert lp.head().status == 410
    finally:
        s.close()
        lp.close()
    assert requests.get(nginx.url("/pub/del")).status_code == 404
    assert requests.delete(nginx.url("/pub/del")).status_code == 404
    healthy(nginx)


def test_options_and_methods(nginx):
    r = requests.options(nginx.url("/pub/o"), headers={"Origin": "http://x"})
    assert r.status_code == 200
    assert r.headers["Allow"] == "GET, POST, PUT, DELETE"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, DELETE"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert r.headers["Access-Control-Allow-Origin"] == "http://x"
    r = requests.options(nginx.url("/sub/o"))
    assert r.headers["Allow"] == "GET"
    assert requests.request("PATCH", nginx.url("/pub/o")).status_code == 403
    assert requests.post(nginx.url("/subonly/o"), data="x").status_code == 403
    healthy(nginx)


def test_cors_origin_check(nginx):
    r = requests.post(nginx.url("/cors/c"), data="x",
                      headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = requests.post(nginx.url("/cors/c"), data="x",
                      headers={"Origin": "https://b.example"})
    assert r.status_code == 202
    assert r.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = requests.get(nginx.url("/cors/c"),
                     headers={"Origin": "https://a.example"})
    assert r.headers["Access-Control-Expose-Headers"] == \
        "Last-Modified, Etag, Content-Type"
    healthy(nginx)


def test_multi_channel_publish_aggregates(nginx):
    s = sse(nginx.url("/sub/m2"))
    try:
        r = requests.post(nginx.url("/multi/m1,m2,m3"), data="all")
        assert r.status_code == 201
        assert "active subscribers: 1" in r.text
        assert "last message id: 0:0" in r.text
        s.read_until(lambda b: b"data: all\n\n" in b)
    finally:
        s.close()
    for c in ("m1", "m2", "m3"):
        assert requests.get(nginx.url("/sub/" + c)).text == "all"


def test_buffer_length_and_timeout_from_variables(nginx):
    for i in range(4):
        r = requests.post(nginx.url("/varlen/v?len=2&ttl=1h"), data=str(i))
        assert r.status_code == 202
    assert "queued messages: 2" in r.text
    assert requests.get(nginx.url("/sub/v")).text == "2"
    for bad in ("len=abc&ttl=1h", "len=2&ttl=soon"):
        r = requests.post(nginx.url("/varlen/v?" + bad), data="x")
        assert r.status_code == 403
        assert "Invalid message buffer length or timeout" in r.text
    healthy(nginx)


def test_store_messages_off_delivers_live_and_stores_nothing(nginx):
    s = sse(nginx.url("/sub/ns"))
    try:
        for i in range(3):
            requests.post(nginx.url("/nostore/ns"), data="n%d" % i)
        body = s.read_until(lambda b: b"data: n2\n\n" in b)
        assert [e["data"] for e in parse_sse(body) if "data" in e] == \
            ["n0", "n1", "n2"]
    finally:
        s.close()
    # the reference's buffer length 0: no message counts as queued, and a
    # subscriber that comes later gets none of them
    info = requests.get(nginx.url("/pub/ns")).text
    assert "queued messages: 0" in info
    assert "last message id: " in info and ":2" in info
    r = requests.get(nginx.url("/subpoll/ns"), timeout=5)
    assert r.status_code == 304
