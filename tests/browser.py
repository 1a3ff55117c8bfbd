"""A real headless browser (Debian's ``chromium``) that opens a report page from disk, checks
that every image loaded with no script or console error, and takes screenshots.

``python tests/browser.py PAGE PNG`` checks PAGE and saves its screenshot as PNG (how
``docs/report.png`` is made from ``make audit``'s report).
"""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
WINDOW = "1400,2400"
TIMEOUT = 120
# Runs first in a copy of the page: records failed loads, script errors and console.error calls,
# and at "load" (every image done) writes them with each image's natural width into the DOM.
PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (event) {
    var node = event.target;
    if (node && node !== window && node.tagName) {
      errors.push("failed to load " + node.tagName.toLowerCase() + " " + (node.src || node.href));
    } else {
      errors.push("script error: " + event.message);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    errors.push("unhandled rejection: " + event.reason);
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (image) {
      return {src: image.getAttribute("src").slice(0, 120), width: image.naturalWidth};
    });
    document.documentElement.setAttribute(
      "data-probe", JSON.stringify({images: images, errors: errors}));
  });
})();
</script>"""


@dataclass
class PageCheck:
    """What the browser saw: each image's ``src`` and natural width, and every error."""

    images: list[dict]
    errors: list[str]

    @property
    def broken(self) -> list[str]:
        return [image["src"] for image in self.images if not image["width"]]


def chromium() -> str:
    """The browser's path; fails (never skips) when it is missing."""
    found = shutil.which(CHROMIUM)
    if found is None:
        raise AssertionError(
            "chromium is not installed: make test installs it (.ci/setup: apt-get install chromium)"
        )
    return found


def check_page(page: Path) -> PageCheck:
    """Open ``page`` (from disk) in headless chromium and report what loaded and what failed."""
    page = page.resolve()
    text = page.read_text(encoding="utf-8")
    # Beside the page, so that its relative paths still work; a unique name, so that two
    # checks of one page at once do not meet.
    handle, name = tempfile.mkstemp(prefix=f".{page.stem}.", suffix=".probe.html", dir=page.parent)
    probe = Path(name)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text.replace("<head>", "<head>" + PROBE, 1))
    try:
        dom = _run(["--dump-dom", "--virtual-time-budget=10000", probe.as_uri()])
    finally:
        probe.unlink(missing_ok=True)
    found = _probe_attribute(dom)
    if found is None:
        raise AssertionError(f"{page}: the page never finished loading in chromium")
    return PageCheck(**json.loads(found))


def assert_renders(page: Path) -> PageCheck:
    """Fail unless ``page`` has images, all loaded, and no errors."""
    check = check_page(page)
    assert check.images, f"{page}: no images on the page"
    assert not check.broken, f"{page}: images that did not load: {check.broken}"
    assert not check.errors, f"{page}: errors in the browser: {check.errors}"
    return check


def dump_dom(page: Path) -> str:
    """The DOM of ``page`` (from disk) after its scripts ran, as headless chromium serialises it."""
    return _run(["--dump-dom", "--virtual-time-budget=10000", page.resolve().as_uri()])


def screenshot(page: Path, target: Path) -> Path:
    """Save a PNG screenshot of ``page`` at the top of a 1400 x 2400 window."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    _run([f"--screenshot={target}", f"--window-size={WINDOW}", page.resolve().as_uri()])
    if not target.is_file():
        raise AssertionError(f"chromium wrote no screenshot of {page}")
    return target


def _run(arguments: list[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="mps-chromium-") as profile:
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


class _RootAttributes(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.probe: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html" and self.probe is None:
            self.probe = dict(attrs).get("data-probe")


def _probe_attribute(dom: str) -> str | None:
    parser = _RootAttributes()
    parser.feed(dom)
    return parser.probe


if __name__ == "__main__":
    page, target = Path(sys.argv[1]), Path(sys.argv[2])
    assert_renders(page)
    print(screenshot(page, target))
