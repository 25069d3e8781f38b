"""Known data sets: data directory, NAME:SPLIT resolution, checksums, download (local server)."""

from __future__ import annotations

import functools
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cyclevae.data import sources
from cyclevae.data.sources import data_dir, download_dataset, file_sha256, resolve_data_path
from cyclevae.errors import UserError

SPLITS = ("train", "valid", "test")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving the folder it returns; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def make_tgz(path: Path, files: dict[str, bytes]) -> None:
    """A gzip tar laid out like Mikolov's simple-examples.tgz (members named ./simple-...)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./simple-examples/data/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CYCLEVAE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "cyclevae" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "cyclevae" / "data"
    monkeypatch.setenv("CYCLEVAE_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_resolve_known_split_verifies_checksum(shared_data: Path) -> None:
    sources._VERIFIED.clear()
    path = resolve_data_path("ptb:train", shared_data)
    assert path == shared_data / "ptb" / "train.txt"
    assert any(key[0] == str(path.resolve()) for key in sources._VERIFIED)
    for split in ("valid", "test"):
        resolve_data_path(f"yelp:{split}", shared_data)
        resolve_data_path(f"swda-zhao:{split}", shared_data)


def test_resolve_uses_environment_data_dir(shared_data: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEVAE_DATA", str(shared_data))
    assert resolve_data_path("ptb:valid") == shared_data / "ptb" / "valid.txt"


def test_existing_path_is_returned_unchecked(tmp_path: Path) -> None:
    own = tmp_path / "mine.txt"
    own.write_text("hello\n", encoding="utf-8")
    assert resolve_data_path(str(own), None) == own


def test_tampered_copy_fails(shared_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ptb" / "valid.txt"
    copy.parent.mkdir()
    shutil.copyfile(shared_data / "ptb" / "valid.txt", copy)
    assert resolve_data_path("ptb:valid", tmp_path) == copy
    # Same size, new content and mtime: the cached verification must not hide it.
    data = bytearray(copy.read_bytes())
    data[10] = ord("x") if data[10] != ord("x") else ord("y")
    copy.write_bytes(bytes(data))
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    with pytest.raises(UserError, match="sha256") as info:
        resolve_data_path("ptb:valid", tmp_path)
    assert str(copy) in str(info.value) and "cyclevae data download ptb" in str(info.value)
    assert resolve_data_path("ptb:valid", tmp_path, verify=False) == copy


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope:train", "unknown data set 'nope'; known: ptb:"),
        ("ptb:dev", "unknown split 'dev' of ptb; known:"),
        ("no/such/file.txt", "no such file"),
    ],
)
def test_resolve_errors(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        resolve_data_path(spec, tmp_path)


def test_missing_known_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cyclevae data download ptb.*CYCLEVAE_DATA"):
        resolve_data_path("ptb:test", tmp_path)
    with pytest.raises(UserError, match="place train.tsv"):
        resolve_data_path("yelp:train", tmp_path)


def test_download_ptb(shared_data: Path, server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    make_tgz(root / "simple-examples.tgz",
             {f"ptb.{s}.txt": (shared_data / "ptb" / f"{s}.txt").read_bytes() for s in SPLITS}
             | {"ptb.char.train.txt": b"a b c\n"})
    target = tmp_path / "data"
    paths = download_dataset("ptb", target, url=f"{base}/simple-examples.tgz", progress=False)
    assert paths == [target / "ptb" / f"{s}.txt" for s in SPLITS]
    for s, path in zip(SPLITS, paths, strict=True):
        assert file_sha256(path) == file_sha256(shared_data / "ptb" / f"{s}.txt")
    assert sorted(p.name for p in (target / "ptb").iterdir()) == ["test.txt", "train.txt",
                                                                   "valid.txt"]
    assert resolve_data_path("ptb:train", target) == paths[0]
    # Already there and valid: no download (this URL would fail).
    assert download_dataset("ptb", target, url=f"{base}/missing.tgz", progress=False) == paths


def test_download_checksum_mismatch_leaves_nothing(server: tuple[str, Path],
                                                   tmp_path: Path) -> None:
    base, root = server
    files = {f"ptb.{s}.txt": f"fake {s} sentence\n".encode() for s in SPLITS}
    make_tgz(root / "fake.tgz", files)
    target = tmp_path / "data"
    with pytest.raises(UserError, match="sha256.*nothing was installed"):
        download_dataset("ptb", target, url=f"{base}/fake.tgz", progress=False)
    assert list((target / "ptb").iterdir()) == []
    # The same archive is accepted when its checksums are the expected ones.
    sums = {f"{s}.txt": sources.hashlib.sha256(files[f"ptb.{s}.txt"]).hexdigest() for s in SPLITS}
    paths = download_dataset("ptb", target, url=f"{base}/fake.tgz", progress=True,
                             checksums=sums)
    assert paths[1].read_text() == "fake valid sentence\n"


def test_download_failures(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    target = tmp_path / "data"
    with pytest.raises(UserError, match="could not download .*404"):
        download_dataset("ptb", target, url=f"{base}/absent.tgz", progress=False)
    (root / "junk.tgz").write_bytes(b"this is not an archive")
    with pytest.raises(UserError, match="not a valid .tgz"):
        download_dataset("ptb", target, url=f"{base}/junk.tgz", progress=False)
    make_tgz(root / "partial.tgz", {"ptb.train.txt": b"x\n"})
    with pytest.raises(UserError, match="no file simple-examples/data/ptb.valid.txt"):
        download_dataset("ptb", target, url=f"{base}/partial.tgz", progress=False)
    assert list((target / "ptb").iterdir()) == []


def test_download_without_public_archive(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no public download is known for yelp: place train.tsv"):
        download_dataset("yelp", tmp_path)
    with pytest.raises(UserError, match="unknown data set 'wiki'"):
        download_dataset("wiki", tmp_path)
