"""The web UI in headless Chromium, as its users meet it: `pps run` as a process with
a password from `pps passwd`, a local folder to watch, a target that prints and one
that is down until a marker file exists. Run by scripts/test-ui."""

from __future__ import annotations

import datetime
import os
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Literal, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.environ.get("PPS_BINARY", "../../target/debug/pps")
SHOTS = Path(os.environ.get("PPS_UI_SCREENSHOTS", "../../target/ui-screenshots"))
PASSWORD = "a long browser password"
TOKEN = "browser-test-trigger-token"
# Names that are markup: a folder and a file (a name cannot hold `/`).
HOSTILE_DIR = '"><img src=x onerror=alert(1)>'
HOSTILE_FILE = "<svg onload=alert(2)>.mkv"
PAGES = ["login", "", "watches", "watches/edit?i=0", "browse", "activity", "logs", "config?check=1"]


class Service_:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}/pps/"
        self.config = root / "pps.toml"
        self.tv = root / "media" / "TV"
        self.films = root / "media" / "Films"
        self.marker = root / "library-online"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def svc() -> Iterator[Service_]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "media" / "TV" / "Show").mkdir(parents=True)
        (root / "media" / "Films").mkdir(parents=True)
        h = subprocess.run(
            [BINARY, "passwd"], input=PASSWORD + "\n", capture_output=True, text=True, check=True
        ).stdout.strip()
        assert h.startswith("$argon2id$")
        port = free_port()
        marker = root / "library-online"
        (root / "pps.toml").write_text(
            f"""# pps.toml of the browser tests
[sources.nas]
kind = "local"

[targets.print]
kind = "stdout"

# A library that is offline until {marker.name} exists.
[targets.library]
kind = "command"
program = "/bin/sh"
args = ["-c", "test -e '{marker}' || {{ echo 'library offline' >&2; exit 1; }}", "sh"]

[server]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[ui]
password_hash = "{h}"
base_path = "/pps/"

[[watch]]
source = "nas"
path = "{root / 'media' / 'TV'}"
interval = "1s"   # fast for the test
targets = ["library"]
"""
        )
        log = open(root / "pps.log", "wb")
        proc = subprocess.Popen(
            [BINARY, "-c", str(root / "pps.toml"), "run"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PPS_LOG": "info", "LANG": "C"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, (root / "pps.log").read_text()
                assert time.monotonic() < deadline, "pps never became healthy"
                time.sleep(0.1)
        try:
            yield Service_(root, port, proc)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
            # The service's log beside the screenshots, for a failure's post-mortem.
            SHOTS.mkdir(parents=True, exist_ok=True)
            (SHOTS / "pps.log").write_bytes((root / "pps.log").read_bytes())


def chrome(width: int, height: int, mobile: bool = False) -> WebDriver:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"]:
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    if mobile:
        opts.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}},
        )
    else:
        opts.add_argument(f"--window-size={width},{height}")
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.implicitly_wait(0)
    return d


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    d = chrome(1280, 900)
    try:
        yield d
    finally:
        d.quit()


# What chromedriver may answer, instead of a result, for a command that meets a page
# being replaced: a node or a script context of the old document, or a frame that is
# being swapped. Each means "look again" (selenium #15401: "Node with given id does
# not belong to the document" in place of a stale element reference). Matched in the
# lower-cased message; any other error is a failure and is raised at once.
NAVIGATING = (
    "does not belong to the document",
    "no node with given id",
    "could not find node with given id",
    "no such execution context",
    "cannot find context with specified id",
    "execution context was destroyed",
    "document unloaded",
    "target frame detached",
    "inspected target navigated or closed",
)
# A browser that is gone is never transient, whatever else the message says.
FATAL = ("tab crashed", "session deleted", "invalid session id", "disconnected", "not reachable")


def navigating(e: WebDriverException) -> bool:
    """Whether `e` is chromedriver meeting a page change (not a stale element: see transient)."""
    m = (e.msg or "").lower()
    return any(s in m for s in NAVIGATING) and not any(s in m for s in FATAL)


def transient(e: WebDriverException) -> bool:
    """Whether reading again may succeed: the element is of an old page or not there yet,
    or the page changed under the command."""
    return isinstance(e, (StaleElementReferenceException, NoSuchElementException)) or navigating(e)


T = TypeVar("T")


class Wait(WebDriverWait[WebDriver]):
    """A WebDriverWait that looks again on the transient errors of a page change, and
    only on those: any other WebDriverException fails at once with its own message.
    A timeout names the condition, the page the browser is at and the last transient
    error, so that a failure in CI can be read without a rerun."""

    def until(self, method: Callable[[WebDriver], Literal[False] | T], message: str = "") -> T:
        last: list[WebDriverException] = []

        def attempt(d: WebDriver) -> Literal[False] | T:
            try:
                return method(d)
            except TimeoutException:
                raise  # a wait inside the condition gave up: its message says why
            except WebDriverException as e:
                if not transient(e):
                    raise
                last[:] = [e]
                return False

        try:
            return super().until(attempt, message)
        except TimeoutException:
            what = message or getattr(method, "__qualname__", repr(method))
            seen = f"{type(last[0]).__name__}: {(last[0].msg or '').strip()}" if last else "none"
            raise TimeoutException(
                f"waited {self._timeout:g}s for {what}; at {url(self._driver)}; last transient error: {seen}"
            ) from (last[0] if last else None)


def wait(d: WebDriver, seconds: float = 30) -> Wait:
    return Wait(d, seconds, poll_frequency=0.1)


def url(d: WebDriver) -> str:
    """The browser's URL for a message; never raises (the page may be changing)."""
    try:
        return str(d.current_url)
    except WebDriverException as e:
        return f"(unknown: {(e.msg or '').strip()})"


def read(d: WebDriver, what: Callable[[WebDriver], T], seconds: float = 10) -> T:
    """`what(d)`, read again while the page changes under the read."""
    return wait(d, seconds).until(lambda d: [what(d)], "a read of the page")[0]


def text(d: WebDriver) -> str:
    """The page's main text; read again when the page changed under the read."""
    return read(d, lambda d: str(d.find_element(By.TAG_NAME, "main").text))


def new_page(d: WebDriver, action: Callable[[], object], seconds: float = 30) -> None:
    """Do `action` (a click that leaves the page) and wait until the browser shows
    another document, fully loaded. The current document gets a random mark first,
    which the next one cannot have; no element of the old page is asked about (an
    element of a page that goes away may answer with an error, not as stale). A
    navigation error from the action itself (the click raced the page it started) is
    let pass: whether it left the page is what the wait decides."""
    mark, left = secrets.token_hex(8), url(d)
    wait(d, 10).until(
        lambda d: d.execute_script("document.documentElement.dataset.ppsPage = arguments[0]; return true;", mark),
        "marking the current page",
    )
    try:
        action()
    except WebDriverException as e:
        if not navigating(e):
            raise
    wait(d, seconds).until(
        lambda d: d.execute_script(
            """const e = document.documentElement;
            return document.readyState === 'complete' && !!e && e.dataset.ppsPage !== arguments[0];""",
            mark,
        ),
        f"a new page after leaving {left}",
    )


def login(d: WebDriver, svc: Service_, password: str = PASSWORD) -> None:
    d.get(svc.base + "login")
    box = d.find_element(By.NAME, "password")
    box.clear()
    box.send_keys(password)
    # The answer is a new page: wait until it is there before reading it.
    new_page(d, d.find_element(By.CSS_SELECTOR, "form.login button").click)


def no_alert(d: WebDriver) -> None:
    try:
        a = d.switch_to.alert
    except NoAlertPresentException:
        return
    raise AssertionError(f"a script ran: alert {a.text!r}")


def shoot(d: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


def test_1_a_wrong_password_is_refused_and_the_right_one_logs_in(browser: WebDriver, svc: Service_) -> None:
    d = browser
    d.get(svc.base)
    wait(d).until(ec.url_contains("/pps/login"))
    login(d, svc, "not the password")
    assert "Wrong password." in text(d)
    login(d, svc)
    wait(d).until(ec.url_to_be(svc.base))
    assert "Overview" in d.title
    assert "library" in text(d)


def test_2_a_watch_added_in_the_browser_reports_a_new_film_live(browser: WebDriver, svc: Service_) -> None:
    d = browser
    d.get(svc.base + "watches")
    form = d.find_element(By.CSS_SELECTOR, "form.watch-form")
    form.find_element(By.NAME, "path").send_keys(str(svc.films))
    form.find_element(By.NAME, "interval").send_keys("1s")
    form.find_element(By.NAME, "targets").send_keys("print")
    new_page(d, form.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    wait(d).until(ec.url_contains("done=saved"))
    wait(d).until(lambda d: "Saved to" in text(d))
    assert "Saved to the config file and applied." in text(d)
    written = svc.config.read_text()
    assert written.startswith("# pps.toml of the browser tests\n"), "comments kept"
    assert f'path = "{svc.films}"\ninterval = "1s"\ntargets = ["print"]\n' in written

    # Once the new watch has its baseline, a new film shows in Activity without a reload.
    def baselined(d: WebDriver) -> bool:
        d.get(svc.base + "watches")
        rows = d.find_elements(By.CSS_SELECTOR, "#watches tbody tr")
        return any(str(svc.films) in r.text and r.find_elements(By.TAG_NAME, "td")[8].text not in ("", "0") for r in rows)

    wait(d).until(baselined)
    d.get(svc.base + "activity")
    marker = d.execute_script("document.body.dataset.marker = 'still the same page'; return 1;")
    assert marker == 1
    film = svc.films / "Arrival (2016)"
    film.mkdir()
    (film / "Arrival (2016).mkv").write_bytes(b"x")
    wait(d).until(
        lambda d: len(d.find_elements(By.XPATH, "//tr[contains(@class,'ev-change')][contains(., 'Arrival (2016)')]")) > 0
        and len(d.find_elements(By.XPATH, "//tr[contains(@class,'ev-sent')][contains(., 'Arrival (2016)')]")) > 0
    )
    assert d.execute_script("return document.body.dataset.marker") == "still the same page", "no reload"


def test_3_scan_now_makes_the_watch_due(browser: WebDriver, svc: Service_) -> None:
    d = browser
    d.get(svc.base + "watches")
    row = d.find_element(By.XPATH, f"//tr[contains(., '{svc.tv}')]")
    new_page(d, row.find_element(By.XPATH, ".//button[text()='Scan now']").click)
    wait(d).until(ec.url_contains("done=scan_started"))
    assert "Scan started" in text(d)
    # The page follows the scan until it is done (it reloads itself meanwhile).
    wait(d, 60).until(lambda d: "Scanned" in d.find_element(By.XPATH, f"//tr[contains(., '{svc.tv}')]").text)


def test_4_a_parked_scan_is_retried_once_its_target_is_back(browser: WebDriver, svc: Service_) -> None:
    d = browser
    (svc.tv / "Show" / "S01E01.mkv").write_bytes(b"x")

    def parked(d: WebDriver) -> bool:
        d.get(svc.base)
        return "library offline" in text(d)

    wait(d, 60).until(parked)
    svc.marker.touch()
    row = d.find_element(By.XPATH, "//tr[td[1][text()='library']]")
    new_page(d, row.find_element(By.XPATH, ".//button[text()='Retry']").click)
    wait(d).until(ec.url_to_be(svc.base + "?retried=1"))
    assert "Queued again: 1" in read(d, lambda d: d.find_element(By.ID, "retried").text)

    def sent(d: WebDriver) -> bool:
        d.get(svc.base + "activity?target=library&event=sent")
        return "Show" in text(d) and len(d.find_elements(By.CSS_SELECTOR, "tr.ev-sent")) > 0

    wait(d, 60).until(sent)


def test_5_an_invalid_interval_is_refused_and_the_file_stays_byte_identical(browser: WebDriver, svc: Service_) -> None:
    d = browser
    before = svc.config.read_bytes()
    d.get(svc.base + "watches/edit?i=0")
    box = d.find_element(By.NAME, "interval")
    box.clear()
    box.send_keys("soon")
    new_page(d, d.find_element(By.CSS_SELECTOR, "form.watch-form button[type=submit]").click)
    shown = wait(d).until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "p.error") if e.is_displayed()])
    err = shown[0]
    assert "watch[0].interval" in err, err
    # The same message `pps check` prints for that file.
    trial = svc.root / "trial.toml"
    trial.write_text(before.decode().replace('interval = "1s"   # fast', 'interval = "soon"   # fast', 1))
    check = subprocess.run([BINARY, "-c", str(trial), "check"], capture_output=True, text=True)
    assert check.returncode == 2
    assert "watch[0].interval" in check.stderr
    assert svc.config.read_bytes() == before


def test_6_a_hand_edit_of_pps_toml_is_picked_up(browser: WebDriver, svc: Service_) -> None:
    d = browser
    svc.config.write_text(svc.config.read_text().replace('interval = "1s"   # fast', 'interval = "7s"   # fast', 1))

    def applied(d: WebDriver) -> bool:
        d.get(svc.base + "config")
        return 'interval = "7s"' in text(d)

    wait(d, 30).until(applied)

    # An invalid hand edit: a banner on every page with pps check's words, the Watches
    # page shows the config in force (not the refused file) and offers no edits.
    good = svc.config.read_text()
    svc.config.write_text(good.replace('interval = "7s"   # fast', 'interval = "banana"   # fast', 1))

    def banner(d: WebDriver) -> str:
        d.get(svc.base + "watches")
        shown = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".banner") if e.is_displayed()]
        return shown[0] if shown else ""

    said = wait(d, 30).until(banner)
    assert "refused" in said and "watch[0].interval" in said, said
    assert "banana" not in read(d, lambda d: d.find_element(By.ID, "watches").text)
    assert not d.find_elements(By.CSS_SELECTOR, "#watches button.danger"), "no edits of a refused file"
    # Put back: the banner goes.
    svc.config.write_text(good)
    wait(d, 30).until(lambda d: not banner(d))


def test_7_a_post_without_the_csrf_token_is_refused(browser: WebDriver, svc: Service_) -> None:
    d = browser
    d.get(svc.base + "watches")
    before = svc.config.read_bytes()
    status = d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
          body: 'index=1&expect=' + encodeURIComponent(arguments[1])}).then(r => done(r.status));""",
        svc.base + "watches/delete",
        str(svc.films),
    )
    assert status == 403
    assert svc.config.read_bytes() == before


def test_8_hostile_names_are_shown_as_text(browser: WebDriver, svc: Service_) -> None:
    d = browser
    bad = svc.tv / HOSTILE_DIR
    bad.mkdir()
    (bad / HOSTILE_FILE).write_bytes(b"x")
    d.get(svc.base + "browse?source=nas&path=" + urllib.parse.quote(str(svc.tv)))
    assert HOSTILE_DIR + "/" in text(d), (d.current_url, text(d))
    no_alert(d)
    assert not read(d, lambda d: d.find_elements(By.CSS_SELECTOR, "main img, main svg"))
    new_page(d, d.find_element(By.LINK_TEXT, HOSTILE_DIR + "/").click)
    wait(d).until(lambda d: HOSTILE_FILE in text(d))
    no_alert(d)
    assert not read(d, lambda d: d.find_elements(By.CSS_SELECTOR, "main img, main svg"))
    d.get(svc.base + "activity")
    wait(d, 60).until(lambda d: HOSTILE_FILE in text(d) or HOSTILE_DIR in text(d))
    no_alert(d)
    assert not read(d, lambda d: d.find_elements(By.CSS_SELECTOR, "main img, main svg"))


def test_9_every_page_at_desktop_and_phone_width(browser: WebDriver, svc: Service_) -> None:
    d = browser
    for p in PAGES[1:]:
        d.get(svc.base + p)
        no_alert(d)
        shoot(d, "desktop-" + (p.split("?")[0].replace("/", "-") or "overview"))
    phone = chrome(390, 844, mobile=True)
    try:
        phone.get(svc.base + "login")
        shoot(phone, "phone-login")
        login(phone, svc)
        wait(phone).until(ec.url_to_be(svc.base))
        # A folder with a long name: the Browser's target choice holds its whole mapped
        # path, which must not push the page sideways.
        long = svc.tv / ("A very long folder name of a box set " * 4).strip()
        long.mkdir(exist_ok=True)
        long_page = "browse?" + urllib.parse.urlencode({"source": "nas", "path": str(long)})
        for p in [*PAGES[1:], long_page]:
            phone.get(svc.base + p)
            # Usable on a phone: the page never scrolls sideways. Chrome widens the
            # layout viewport to fit what overflows, so innerWidth must stay the
            # phone's 390 px, and nothing may be wider.
            width = read(
                phone, lambda d: d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            )
            assert width[1] == 390 and width[0] <= width[1] + 1, (p, width)
            # Nor does a table inside its own scrolling box (the page's width cannot
            # see that): every .scroll box holds its content.
            boxes = read(
                phone,
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('.scroll')].map(b => [b.scrollWidth, b.clientWidth])"
                ),
            )
            assert all(sw <= cw + 1 for sw, cw in boxes), (p, boxes)
            name = "phone-browse-long" if p == long_page else "phone-" + (p.split("?")[0].replace("/", "-") or "overview")
            shoot(phone, name)
        # Chinese, switched from the page: the same page comes back, its filters kept.
        phone.get(svc.base + "activity?target=library")
        new_page(phone, phone.find_element(By.LINK_TEXT, "中文").click)
        wait(phone).until(lambda d: "配置" in d.find_element(By.TAG_NAME, "nav").text)
        assert phone.current_url == svc.base + "activity?target=library", phone.current_url
        phone.get(svc.base)
        assert "概览" in text(phone)
        shoot(phone, "phone-overview-zh")
        # Times in the reader's time zone and language: a reader in Shanghai sees
        # Activity's UTC times eight hours on, written the Chinese way.
        phone.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Shanghai"})
        phone.get(svc.base + "activity")

        def first_time(d: WebDriver) -> tuple[str, str]:
            t = d.find_element(By.CSS_SELECTOR, "#history time[datetime]")
            return str(t.get_attribute("datetime")), t.text

        stamp, shown = read(phone, first_time)
        at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        local = at + datetime.timedelta(hours=8)
        assert f"{local.year}/{local.month}/{local.day}" in shown, (stamp, shown)
        assert f"{local.minute:02}:{local.second:02}" in shown and str(local.hour) in shown, (stamp, shown)
        assert "UTC" not in shown, shown
    finally:
        phone.quit()


def test_10_logout_ends_the_session(browser: WebDriver, svc: Service_) -> None:
    d = browser
    d.get(svc.base)
    assert "Log out" in read(d, lambda d: d.find_element(By.TAG_NAME, "nav").text), (d.current_url, text(d))
    new_page(d, d.find_element(By.XPATH, "//nav//button[text()='Log out']").click)
    wait(d).until(ec.url_contains("/pps/login"))
    d.get(svc.base + "watches")
    wait(d).until(ec.url_contains("/pps/login"))
    shoot(d, "desktop-login")


def test_pps_passwd_does_not_show_the_password_at_a_terminal() -> None:
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: pps passwd on the terminal
        os.execv(BINARY, [BINARY, "passwd"])
    out = b""
    deadline = time.monotonic() + 20

    def read_until(marker: bytes | None) -> None:
        """Reads the terminal until `marker` shows (or, for None, it closes), never
        past the deadline: a prompt the test did not expect must fail it, not hang it."""
        nonlocal out
        while time.monotonic() < deadline:
            if marker is not None and marker in out:
                return
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk

    try:
        # pps passwd asks twice (a typo at a hidden prompt would lock the user out).
        read_until(b"password")
        os.write(fd, b"secret-password-9\n")
        read_until(b"again")
        assert b"again" in out, out
        os.write(fd, b"secret-password-9\n")
        read_until(None)
    finally:
        # The terminal closes while the child exits, a moment before it can be reaped:
        # wait for it (under the deadline) before deciding it hangs and killing it.
        done, status = os.waitpid(pid, os.WNOHANG)
        while done == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"$argon2id$" in out
    assert b"secret-password-9" not in out, out
