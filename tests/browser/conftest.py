"""A real ``reelgate serve`` and Debian's Chromium driven by Playwright, headless.

Without ``/usr/bin/chromium`` or the ``playwright`` package these tests skip
on a laptop; under ``CI=true`` they fail instead, so CI can never skip them.
Playwright never downloads a browser here: it drives the system Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from reelgate.store.accounts import create_account, create_key
from reelgate.store.db import create_engine
from tests.conftest import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DEV_KEY = "rg_browser_test_key_0123456789abcdefghijkl"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# `make screenshots` refreshes the pictures in docs/; `make test` only takes them (to
# prove the pages render) into a temporary folder, so it leaves the checkout clean.
SCREENSHOTS = (
    DOCS_SCREENSHOTS
    if os.environ.get("REELGATE_TEST_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "reelgate-screenshots"
)


@dataclass(frozen=True)
class Server:
    base: str
    key: str
    data_dir: Path
    log: Path

    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'reelgate.db'}"

    def api(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)


def _require_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"reelgate serve never became healthy:\n{log.read_text()}")


@contextlib.contextmanager
def serving(root: Path, *args: str) -> Iterator[Server]:
    """``reelgate serve`` (API + worker + page) on a free port with its own data dir under
    ``root``, with ``args`` added (``--emulators``...); stopped at the end."""
    _require_browser()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(REELGATE_DATA_DIR=str(root / "data"), REELGATE_DEV_API_KEY=DEV_KEY)
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelgate.cli.main", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield Server(base=base, key=DEV_KEY, data_dir=root / "data", log=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``reelgate serve`` on the ``local`` renderer alone."""
    with serving(tmp_path_factory.mktemp("studio")) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (empty localStorage) per test; any uncaught script
    error or Content-Security-Policy violation on the page fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


async def _add_account(database_url: str, name: str) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            account_id = await create_account(conn, name)
            return await create_key(conn, account_id, name=f"{name} key")
    finally:
        await engine.dispose()


def account_without_credits(server: Server) -> str:
    """A key of a new account with a zero balance, written into the server's SQLite file.

    Run on its own thread: Playwright's sync API keeps an event loop on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _add_account(server.database_url(), "no credits")).result()


def screenshot(tab: Page, name: str) -> Path:
    """Save the viewport, scrolled to the top, as <name>.png (in docs/screenshots/ under
    ``make screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.evaluate("() => window.scrollTo(0, 0)")
    tab.screenshot(path=str(path), animations="disabled")
    return path
