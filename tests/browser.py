"""Open a report page in real headless chromium and read back what the browser laid out.

A small script added to a copy of the page writes, after the load event,
the page's scroll width at the given window width, the number of images and
of broken ones, and every heading, into a `<pre id="probe">` that
``--dump-dom`` returns.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

_PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var headings = Array.prototype.map.call(document.querySelectorAll('h1, h2, h3, h4'),
                                          function (h) { return h.textContent; });
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({scroll_width: document.documentElement.scrollWidth,
                                    client_width: document.documentElement.clientWidth,
                                    images: images.length, broken: broken, headings: headings});
  document.body.appendChild(out);
});
</script>"""


def browser_or_skip() -> str:
    """The chromium binary; the test is skipped, saying why, where none is installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no browser: chromium is not installed (apt-get install chromium; "
                    "scripts/install-system-deps.sh installs it)")
    return browser


def layout_of(page: Path, work: Path, width: int = 1280) -> dict:
    """What chromium made of ``page`` in a ``width`` px wide window: scroll_width, images, broken, headings."""
    browser = browser_or_skip()
    probed = work / f"probed_{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},900", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=180, check=True)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe did not run: {run.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
