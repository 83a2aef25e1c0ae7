"""The node's status page in a real browser: headless Chromium opens
https://127.0.0.1:PORT/ and the page names the key-exchange group of that very
connection (Chromium offers X25519MLKEM768 by default).

Chromium comes from scripts/setup-chromium.sh (Debian's `chromium`, installed
if missing); the test is skipped only when that script cannot provide it.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

import pytest

from conftest import REPO_ROOT


def chromium() -> str:
    p = subprocess.run([str(REPO_ROOT / "scripts" / "setup-chromium.sh")],
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        pytest.skip(f"no Chromium: scripts/setup-chromium.sh failed: {p.stderr.strip()[-500:]}")
    return p.stdout.strip().splitlines()[-1]


def dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        args = [
            browser, "--headless", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}",
            # The node's certificate comes from its own development CA.
            "--ignore-certificate-errors",
            "--dump-dom", url,
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to sandbox as root
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"chromium failed ({p.returncode}): {p.stderr[-2000:]}"
    return p.stdout


def test_chromium_reads_the_key_exchange_group_from_the_status_page(node):
    browser = chromium()
    dom = dump_dom(browser, f"{node.endpoint}/")
    group = re.search(r'<td id="key-exchange">([^<]*)</td>', dom)
    assert group, f"no key-exchange cell in the page:\n{dom[:3000]}"
    assert group.group(1) == "X25519MLKEM768", dom[:3000]
    tls = re.search(r'<td id="tls-version">([^<]*)</td>', dom)
    assert tls and tls.group(1) == "TLS 1.3", dom[:3000]
    assert "<h1>keyfence</h1>" in dom, dom[:3000]
