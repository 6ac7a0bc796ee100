"""report.html in a real browser: Debian's Chromium (infra/browser.sh) driven by Playwright.

Builds and runs the demo (`cargo run -p pipai-report --example demo_report`), opens its
report.html over file:// with every other request aborted, and checks that the page loads with no
console error and no failed or outside request, that each chart's SVG has a real size and drawn
paths, that the chart regions have coloured pixels in a screenshot, that the page fits a laptop
width and keeps charts whole in print. Saves a full-page PNG to .local/browser/report.png.

Never downloads a browser: Playwright launches /usr/bin/chromium (`executable_path`).

Run: infra/browser.sh && infra/pytest.sh -q infra/tests/test_report_browser.py
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# The machine's closed network: without the background-networking flags Chromium keeps trying
# to reach Google's hosts (see the machine notes).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = ["chart-equity", "chart-drawdown"]
OUT = REPO / ".local" / "browser"


@pytest.fixture(scope="module")
def report() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "report.html"
    subprocess.run(
        ["cargo", "run", "-q", "-p", "pipai-report", "--example", "demo_report", "--", str(path)],
        cwd=REPO,
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run infra/browser.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS, chromium_sandbox=False)
        yield b
        b.close()


class Loaded:
    """A page holding the report, with what it logged and requested."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.outside: list[str] = []


def open_report(browser, report: Path, width: int = 1280, height: int = 900) -> Loaded:
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    loaded = Loaded(page)

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            loaded.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and loaded.console_errors.append(m.text))
    page.on("pageerror", lambda e: loaded.console_errors.append(str(e)))
    page.on("requestfailed", lambda r: loaded.failed.append(f"{r.url}: {r.failure}"))
    page.goto(report.as_uri(), wait_until="load")
    return loaded


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit RGB or RGBA PNG, unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    out, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        previous = line
    return width, height, channels, bytes(out)


def coloured_fraction(png: bytes) -> float:
    """Share of pixels that are clearly coloured (the series), not the page's greys and white."""
    width, height, channels, pixels = decode_png(png)
    coloured = 0
    for i in range(0, len(pixels), channels):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        coloured += max(r, g, b) - min(r, g, b) > 60
    return coloured / (width * height)


def test_report_loads_offline_without_errors(browser, report):
    loaded = open_report(browser, report)
    assert loaded.console_errors == []
    assert loaded.failed == []
    assert loaded.outside == [], "the report must need nothing but itself"
    assert loaded.page.title().startswith("Backtest report: tpl_ma_cross on BTCUSDT")
    # No script at all, and nothing linked from outside the file.
    html = report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    for section in ["equity", "drawdown", "monthly", "metrics", "trade-stats", "trades", "config"]:
        assert loaded.page.locator(f"section#{section}").count() == 1, section
    loaded.page.context.close()


def test_charts_have_size_paths_and_pixels(browser, report):
    loaded = open_report(browser, report)
    page = loaded.page
    for chart in CHARTS:
        svg = page.locator(f"#{chart} svg")
        box = svg.bounding_box()
        assert box and box["width"] > 900 and box["height"] > 150, (chart, box)
        lines = page.locator(f"#{chart} svg path.line")
        assert lines.count() >= 1, chart
        for i in range(lines.count()):
            path = lines.nth(i)
            pbox = path.bounding_box()
            assert pbox and pbox["width"] > 0.8 * box["width"] and pbox["height"] > 20, (chart, i, pbox)
            assert path.evaluate("p => p.getTotalLength()") > 1000, (chart, i)
        shot = svg.screenshot()
        assert coloured_fraction(shot) > 0.005, chart
    # The equity chart draws the strategy and the benchmark.
    assert page.locator("#chart-equity path.line.strategy").count() == 1
    assert page.locator("#chart-equity path.line.bench").count() == 1
    page.screenshot(path=str(OUT / "report.png"), full_page=True)
    assert (OUT / "report.png").stat().st_size > 50_000
    page.context.close()


def test_fits_a_laptop_and_prints_charts_whole(browser, report):
    for width in (1366, 1024, 800):
        loaded = open_report(browser, report, width=width)
        page = loaded.page
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= width, (width, overflow)
        box = page.locator("#chart-equity svg").bounding_box()
        assert box["width"] > 0.7 * width, (width, box)
        page.context.close()
    # An A4 page's printable width is about 700 CSS px: nothing may stick out (print does not scroll).
    loaded = open_report(browser, report, width=700)
    page = loaded.page
    page.emulate_media(media="print")
    overflow = page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= 700, overflow
    styles = page.evaluate(
        "() => [...document.querySelectorAll('figure.chart')].map(f => getComputedStyle(f).breakInside)"
    )
    assert styles == ["avoid", "avoid"], styles
    assert page.locator("nav").evaluate("n => getComputedStyle(n).display") == "none"
    assert len(page.pdf(format="A4")) > 10_000
    page.context.close()
