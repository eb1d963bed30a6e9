"""Tests and benchmarks send traffic only to loopback: no IP literal outside 127.0.0.0/8 and ::1, and no URL that
code could connect to on another host, in any .py file under tests/ or bench/."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s'\"<>)\]]*)")
LOCAL_HOSTS = {"localhost", ""}


def _loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


def offending(text: str) -> list[str]:
    """Every non-loopback address or URL to another host in `text`."""
    bad = []
    for m in IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue  # a version number such as 1.2.3.456, not an address
        if not _loopback(m.group()):
            bad.append(m.group())
    for m in IPV6.finditer(text):
        try:
            addr = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue  # a time of day, a slice, a dict
        if not addr.is_loopback and m.group().count(":") >= 2 and m.group() != "::":
            bad.append(m.group())
    for m in URL.finditer(text):
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme == "file":
            continue
        host = urlsplit(f"{scheme}://{rest}").hostname or ""
        if host not in LOCAL_HOSTS and not _loopback(host):
            bad.append(m.group())
    return bad


def test_the_scanner_finds_what_it_must():
    assert offending("socket.create_connection(('1.1.1.1', 53))") == ["1.1.1.1"]
    assert offending("connect(('2606:4700:4700::1111', 53))") == ["2606:4700:4700::1111"]
    assert offending("requests.get('https://huggingface.co/api')") == ["https://huggingface.co/api"]
    assert offending("s.bind(('10.0.0.2', 0)); url = 'http://192.168.1.1:80/'")[0] == "10.0.0.2"
    assert (
        offending("('127.0.0.1', p) ('::1', p) 'http://127.0.0.1:8000/x' 'http://localhost:1/' 'file:///tmp/x'") == []
    )
    assert offending("version 1.2.3.456, time 12:30, x[1:2], {'a': 1}") == []


def test_no_test_or_benchmark_reaches_off_the_machine():
    # This file is left out: it holds the scanner's own examples as data and connects to nothing.
    files = [p for d in ("tests", "bench") for p in sorted((ROOT / d).rglob("*.py")) if p != Path(__file__).resolve()]
    assert len(files) > 20
    found = {str(p.relative_to(ROOT)): hits for p in files if (hits := offending(p.read_text(encoding="utf-8")))}
    assert found == {}, found
