"""Headless Chromium for the browser tests: find it, or install Debian's package when we can.

Only the project's own test setup installs anything here: as root on Debian (apt-get present) a
missing browser is installed with `apt-get install chromium`. Everywhere else the caller gets
`(None, reason)` and should skip the test loudly.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_TIMEOUT_S = 600
# flags for a headless run in a container: no sandbox (root), no GPU, /tmp instead of /dev/shm
HEADLESS_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--hide-scrollbars", "--mute-audio")


def chromium_path() -> str | None:
    """The first Chromium/Chrome executable on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """(path, how it was found) or (None, why not): installs Debian's chromium as root if needed."""
    found = chromium_path()
    if found:
        return found, f"found {found}"
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return None, f"no browser on PATH (looked for {', '.join(CANDIDATES)}) and no apt-get to install one"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "no browser on PATH and not root, so `apt-get install chromium` is not possible"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = ([apt_get, "update", "-qq"], [apt_get, "install", "-y", "-qq", "chromium"])
    for step in steps:
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(step)}` took longer than {INSTALL_TIMEOUT_S} s"
        except OSError as error:
            return None, f"`{' '.join(step)}` could not run: {error}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-500:]
            return None, f"`{' '.join(step)}` failed with exit code {done.returncode}: {tail}"
    found = chromium_path()
    if found:
        return found, f"installed Debian's chromium at {found}"
    return None, "`apt-get install chromium` succeeded but no browser is on PATH"


def run_chromium(browser: str, profile: Path, *args: str, timeout: float = 60,
                 attempts: int = 2) -> subprocess.CompletedProcess:
    """Run one headless Chromium command with a fresh profile folder; stdout is text.

    Headless Chromium now and then does not exit after a screenshot (seen in one fresh-clone run
    of the suite, where the same page had just rendered for --dump-dom). A hung browser says
    nothing about the page, so it is killed and the command run again, with a new profile,
    before the test fails.
    """
    for attempt in range(1, attempts + 1):
        folder = profile if attempt == 1 else profile.with_name(f"{profile.name}-retry{attempt}")
        command = [browser, *HEADLESS_FLAGS, f"--user-data-dir={folder}", *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def png(width: int, height: int, pixel=lambda x, y: (37, 99, 235)) -> bytes:
    """A small RGB PNG drawn pixel by pixel (`pixel(x, y) -> (r, g, b)`), for test figures."""
    raw = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
