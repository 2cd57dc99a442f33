"""The React bindings (clients/react) in headless Chromium: the tests of
clients/react/test/hooks.test.jsx, bundled by esbuild, against fake
transports; each must pass."""

import os
import subprocess

import pytest

from browser import Browser
from conftest import ROOT

BUILT = os.path.join(ROOT, "build", "react-test")


@pytest.fixture(scope="module")
def results():
    subprocess.run(["/usr/bin/node", os.path.join(
        ROOT, "clients", "react", "test", "build.mjs")], check=True)
    b = Browser()
    try:
        b.open("file://" + os.path.join(BUILT, "index.html"))
        out = b.wait("window.RESULTS", 30, "the hooks tests to finish")
        errors = b.errors()
    finally:
        b.close()
    assert not [e for e in errors if e.startswith("pageerror")], errors
    return out


def test_every_hooks_test_ran(results):
    assert len(results) == 8, [r["name"] for r in results]


@pytest.mark.parametrize("i", range(8))
def test_hooks(results, i):
    r = results[i]
    assert r["ok"], "%s\n%s" % (r["name"], r.get("error"))
