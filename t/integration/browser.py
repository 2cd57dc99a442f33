"""Headless Chromium for the end-to-end tests: Debian's /usr/bin/chromium
driven by npm playwright-core through clients/js/test/e2e/driver.mjs (one
JSON request and answer per line)."""

import json
import os
import subprocess
import threading

from conftest import ROOT

JS_DIR = os.path.join(ROOT, "clients", "js")
DRIVER = os.path.join(JS_DIR, "test", "e2e", "driver.mjs")
# Screenshots: CI keeps build/ as its artefacts.
SHOTS = os.path.join(ROOT, "build", "screenshots")


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self):
        if not os.path.isdir(os.path.join(ROOT, "node_modules",
                                          "playwright-core")):
            raise AssertionError("playwright-core is not installed: run "
                                 "`make js-deps` (npm ci in the repository root)")
        self.proc = subprocess.Popen(
            ["/usr/bin/node", DRIVER], cwd=JS_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.version = self._answer()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError("the Chromium driver exited: "
                               + "".join(self.stderr[-20:]))
        a = json.loads(line)
        if not a["ok"]:
            raise BrowserError(a["error"])
        return a["value"]

    def call(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def open(self, url):
        return self.call("open", url=url)

    def eval(self, expr):
        return self.call("eval", expr=expr)

    def wait(self, expr, timeout=10.0, what=None):
        try:
            return self.call("wait", expr=expr, timeout=int(timeout * 1000))
        except BrowserError as e:
            state = self.eval("JSON.stringify(window.T || null)")
            raise BrowserError("%s: %s\npage state: %s" % (
                what or expr, e, state[:3000])) from None

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        return self.call("screenshot", path=os.path.join(SHOTS, name))

    def errors(self):
        return self.call("errors")

    def metrics(self):
        """Chromium's Performance.getMetrics: TaskDuration (main-thread
        busy seconds), Timestamp, JSHeapUsedSize, ..."""
        return self.call("metrics")

    def route(self, pattern, action):
        return self.call("route", pattern=pattern, action=action)

    def close(self):
        try:
            self.call("quit")
        except (BrowserError, BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
