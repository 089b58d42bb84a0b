"""The artifacts under models/ are the ones their cards describe: models/README.md's checksums
match the files, and each card names its file's checksum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from min2real.files import file_sha256

MODELS = Path(__file__).resolve().parents[1] / "models"
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| `(?P<sha256>[0-9a-f]{64})` \|$")


def _table() -> dict[str, str]:
    rows = {}
    for line in (MODELS / "README.md").read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            rows[match["file"]] = match["sha256"]
    return rows


def test_every_artifact_has_a_checksum_row():
    artifacts = sorted(
        str(path.relative_to(MODELS)) for path in MODELS.rglob("*") if path.suffix in (".onnx", ".safetensors", ".pt")
    )
    assert artifacts and sorted(_table()) == artifacts


@pytest.mark.parametrize("relative", sorted(_table()))
def test_checksum_matches_the_file_and_its_card(relative):
    expected = _table()[relative]
    path = MODELS / relative
    assert file_sha256(path) == expected, f"{relative} changed: update models/README.md and its card"
    card = (path.parent / "README.md").read_text()
    assert expected in card, f"{path.parent.name}/README.md does not name the file's sha256 {expected}"
