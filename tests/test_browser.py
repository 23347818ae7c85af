"""The rendered book in a real browser: Debian's Chromium driven by Playwright, headless.

The book is built once per session (fast mode, fixture ``book`` in tests/conftest.py, shared with
tests/test_book.py), served from its folder on 127.0.0.1, and every page of ``book/_toc.yml`` is
visited: it loads, every equation is typeset by MathJax (no raw ``$$`` or TeX delimiters left, no
MathJax error), every image has loaded, every internal link resolves (file and anchor), and the
console shows no error and no request leaves 127.0.0.1, no source markup is left in the prose
(an HTML comment's ``-->``, a MyST role or directive, a code fence); each chapter opens with its
reduced-run note. A page of the full mode (chapter 01, fixture ``book_full``) gets the same checks and has no
such note. Screenshots of the first page and of one notebook page go to ``_build/screenshots/``.

Chromium: ``make test`` installs Debian's ``chromium`` when /usr/bin/chromium is missing; no
browser is downloaded by Playwright.
"""

from __future__ import annotations

import functools
import html.parser
import sys
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import run_mode

# The first test that needs the book builds it, executing every notebook: allow for that.
pytestmark = pytest.mark.timeout(3600)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "_build" / "screenshots"
DOCS = build_book.toc_docnames(ROOT)
NOTEBOOK_DOCS = [doc for doc in DOCS if doc.startswith("notebooks/")]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _serve(build):
    """Serve a successful build's html folder on 127.0.0.1; yield its base URL."""
    if not build.ok:
        pytest.fail("the book did not build:\n" + build.failure_report(), pytrace=False)
    handler = functools.partial(_QuietHandler, directory=str(build.html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def site(book):
    yield from _serve(book)


@pytest.fixture(scope="module")
def site_full(book_full):
    yield from _serve(book_full)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        "Chromium is missing: `apt-get update && apt-get install -y chromium` "
        "(the Makefile's `browser` target does it as root)"
    )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _ids_of(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def _open_page(browser, url: str):
    """A new page that records console errors, page errors, failed and off-host requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    problems: list[str] = []
    host = urllib.parse.urlsplit(url).netloc
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} at {m.location}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("request", lambda r: problems.append(f"off-host request: {r.url}")
            if r.url.startswith("http") and urllib.parse.urlsplit(r.url).netloc != host else None)
    return page, problems


_MATH_JS = """
async () => {
  const maths = [...document.querySelectorAll('span.math, div.math')];
  if (maths.length && window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const untypeset = maths.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent);
  const errors = [...document.querySelectorAll('mjx-merror')].map(e => e.textContent);
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style').forEach(e => e.remove());
  return {count: maths.length, untypeset, errors, text: clone.textContent,
          mathjax: !!window.MathJax};
}
"""

_IMAGES_JS = """
async () => {
  const imgs = [...document.images];
  for (const img of imgs) { img.loading = 'eager'; img.scrollIntoView(); }
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(r => { img.onload = r; img.onerror = r; })));
  window.scrollTo(0, 0);
  return imgs.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}
"""

# The prose of a page (code cells, their outputs and typeset math removed) as the reader sees it.
_PROSE_JS = """
() => {
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, div.cell_output, script, style, mjx-container, .MathJax')
      .forEach(el => el.remove());
  return main.textContent;
}
"""

# Markup that means a source line reached the page unparsed: a comment's end, MyST roles and
# directives, code fences.
_RAW_MARKUP = ("-->", "<!--", "{glue", "{ref}`", "{doc}`", "{cite}`", "{eq}`", "{numref}`", "{prf:",
               "{exercise", "{solution", "{code-cell", "```", ":::")


def raw_markup(text: str) -> list[str]:
    """Each line of ``text`` that holds one of ``_RAW_MARKUP``, stripped."""
    return [line.strip() for line in text.splitlines() if any(raw in line for raw in _RAW_MARKUP)]


def _broken_internal_links(page, site: str, html_dir: Path) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(site + "/"):
            continue
        parts = urllib.parse.urlsplit(href)
        rel = urllib.parse.unquote(parts.path).lstrip("/")
        target = html_dir / rel
        if rel == "" or target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href} (no file {target.relative_to(html_dir)})")
        elif (parts.fragment and target.suffix == ".html"
              and urllib.parse.unquote(parts.fragment) not in _ids_of(target)):
            broken.append(f"{href} (no anchor #{parts.fragment})")
    return broken


def _check_page(browser, site: str, html_dir: Path, doc: str, reduced_run: bool) -> None:
    """Every check of the module docstring on one page; ``reduced_run``: the note is expected."""
    assert (html_dir / f"{doc}.html").is_file(), f"{doc}.html was not built"
    url = f"{site}/{doc}.html"
    page, problems = _open_page(browser, url)
    try:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, f"{url} did not load"
        page.wait_for_load_state("networkidle")
        assert page.title(), f"{doc} has no title"

        math = page.evaluate(_MATH_JS)
        if math["count"]:
            assert math["mathjax"], f"{doc}: MathJax did not load"
        assert not math["untypeset"], f"{doc}: equations not typeset: {math['untypeset'][:5]}"
        assert not math["errors"], f"{doc}: MathJax errors: {math['errors'][:5]}"
        for raw in ("$$", "\\[", "\\]", "\\(", "\\)", "\\begin{"):
            assert raw not in math["text"], f"{doc}: raw TeX {raw!r} left in the page"

        raw = raw_markup(page.evaluate(_PROSE_JS))
        assert not raw, f"{doc}: source markup left in the prose: {raw[:5]}"

        images = page.evaluate(_IMAGES_JS)
        unloaded = [img["src"] for img in images if img["width"] <= 0]
        assert not unloaded, f"{doc}: images that did not load: {unloaded}"

        broken = _broken_internal_links(page, site, html_dir)
        assert not broken, f"{doc}: broken internal links: {broken}"

        note = page.locator(f"main .{run_mode.NOTE_CLASS}")
        if reduced_run:
            assert note.count() == 1 and note.is_visible(), f"{doc}: no reduced-run note"
            assert "make book" in note.inner_text()
            code = page.locator("main div.cell").first
            if code.count():
                assert note.bounding_box()["y"] < code.bounding_box()["y"], \
                    f"{doc}: the reduced-run note is not at the top"
        else:
            assert note.count() == 0, f"{doc}: a reduced-run note on a page that is not one"

        page.wait_for_timeout(200)  # late console messages
        assert not problems, f"{doc}: " + "\n".join(problems)
    finally:
        page.close()


@pytest.mark.parametrize("doc", DOCS)
def test_page_renders(doc, site, browser, book):
    _check_page(browser, site, book.html, doc, reduced_run=doc in NOTEBOOK_DOCS)


def test_full_mode_page_renders(site_full, browser, book_full):
    _check_page(browser, site_full, book_full.html, build_book.FULL_TEST_CHAPTER,
                reduced_run=False)


def test_raw_markup_is_found():
    """The prose check sees what issue 18 found in chapter 07: a heading ending in a stray "-->"."""
    found = raw_markup('Fusing real diffusion pipelines (diffusers)" down; the cells -->\nplain prose\n'
                       "see {ref}`ch-image-fusion`")
    assert found == ['Fusing real diffusion pipelines (diffusers)" down; the cells -->',
                     "see {ref}`ch-image-fusion`"]
    assert raw_markup("a -> b, x >= 1, a comment-free line") == []


def test_screenshots(site, browser, book):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = []
    page, problems = _open_page(browser, site)
    try:
        page.goto(f"{site}/index.html", wait_until="load")
        page.wait_for_url(f"**/{DOCS[0]}.html")  # index.html redirects to the root page
        page.wait_for_load_state("networkidle")
        page.evaluate(_MATH_JS)
        shots.append(SCREENSHOTS / "first_page.png")
        page.screenshot(path=str(shots[-1]))
        if NOTEBOOK_DOCS:
            doc = NOTEBOOK_DOCS[0]
            page.goto(f"{site}/{doc}.html", wait_until="load")
            page.wait_for_load_state("networkidle")
            page.evaluate(_MATH_JS)
            page.evaluate(_IMAGES_JS)
            figure = page.locator("div.cell_output img").first
            if figure.count():
                figure.scroll_into_view_if_needed()
            shots.append(SCREENSHOTS / f"{Path(doc).name}.png")
            page.screenshot(path=str(shots[-1]))
            exercises = page.locator("div.exercise").first
            if exercises.count():
                exercises.scroll_into_view_if_needed()
                shots.append(SCREENSHOTS / f"{Path(doc).name}_exercises.png")
                page.screenshot(path=str(shots[-1]))
    finally:
        page.close()
    for shot in shots:
        assert shot.stat().st_size > 10_000, f"{shot} looks empty"
    assert not problems, "\n".join(problems)
