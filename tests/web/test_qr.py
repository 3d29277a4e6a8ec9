"""The QR encoder in web/js/qr.js, run in Chromium, reproduces verified matrices.

tests/web/data/qr_golden.json was made by web/js/qr.js after checking it module for module
against the segno library (all eight masks, versions 1-29, level M, byte mode). segno pads an
already byte-aligned bit stream with one extra zero codeword where ISO/IEC 18004 7.4.10 adds
none, so the two differ only in that pad byte; with segno's padding every mask matched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

GOLDEN = json.loads((Path(__file__).parent / "data" / "qr_golden.json").read_text())


def test_qr_encoder_reproduces_the_verified_matrices(open_page: Any) -> None:
    watch = open_page()
    watch.page.goto("/")
    produced = watch.page.evaluate(
        """async (cases) => {
            const { qrMatrix } = await import('/js/qr.js');
            return cases.map((c) => qrMatrix(c.text, { mask: c.mask })
                .map((row) => row.map((d) => (d ? '1' : '0')).join('')));
        }""",
        GOLDEN,
    )
    for case, rows in zip(GOLDEN, produced, strict=True):
        assert rows == case["rows"], f"{case['text'][:20]!r} mask {case['mask']}"


def test_qr_encoder_refuses_text_too_long_for_any_version(open_page: Any) -> None:
    watch = open_page()
    watch.page.goto("/")
    message = watch.page.evaluate(
        """async () => {
            const { qrMatrix } = await import('/js/qr.js');
            try { qrMatrix('x'.repeat(3000)); return 'no error'; } catch (e) { return e.message; }
        }"""
    )
    assert message == "The text is too long for a QR code."
