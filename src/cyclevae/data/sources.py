"""Known data sets: where their files live, their checksums, and how to download them.

A data file is named either by a path or by ``NAME:SPLIT`` (``ptb:train``), which resolves to
``DATA_DIR/NAME/FILE`` and is checked against its published sha256. ``DATA_DIR`` is, in
order: an explicit ``--data-dir``, the ``CYCLEVAE_DATA`` environment variable, or
``$XDG_CACHE_HOME/cyclevae/data`` (default ``~/.cache/cyclevae/data``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import UserError

__all__ = [
    "DATASETS",
    "PTB_URL",
    "Dataset",
    "data_dir",
    "download_dataset",
    "file_sha256",
    "resolve_data_path",
]

PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """A known data set: ``splits`` maps split -> file name, ``sha256`` file name -> digest.

    ``url`` is the public archive to download (None if there is none); ``members`` maps file
    name -> path of that file inside the archive; ``manual`` tells the user what to place
    where when there is no download.
    """

    name: str
    splits: Mapping[str, str]
    sha256: Mapping[str, str]
    url: str | None = None
    members: Mapping[str, str] | None = None
    manual: str = ""


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="ptb",
            splits={"train": "train.txt", "valid": "valid.txt", "test": "test.txt"},
            sha256={
                "train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                "valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                "test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            },
            url=PTB_URL,
            members={f"{s}.txt": f"simple-examples/data/ptb.{s}.txt"
                     for s in ("train", "valid", "test")},
        ),
        Dataset(
            name="yelp",
            splits={"train": "train.tsv", "valid": "valid.tsv", "test": "test.tsv"},
            sha256={
                "train.tsv": "bf81b5b730cc0ca6cd58522dee8b73145b8d26936a1e3c606734f418a47389a5",
                "valid.tsv": "fbbbcc687c18bd9c218a6cd1ccfa644d6e740f7438e136abeca398535c711cd3",
                "test.tsv": "a8b6c4468fee52398e35a7be157e32b16e7c9f2f72c4439c7d410ff06860c654",
            },
            manual="the authors' 10% Yelp split as LABEL<TAB>SENTENCE lines (converted from "
                   "the pickle of Fu et al.'s repository)",
        ),
        Dataset(
            name="swda",
            splits={"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"},
            sha256={
                "train.jsonl": "8a03ff97f15d0c67d68980e3a0ed2fbad46c71e2a196fe6888a3efbf23ed0989",
                "valid.jsonl": "fe7c8119ff7d6dbad4b1c89960b2b3f2439d38b6961f6d8a68deae3a2032b68f",
                "test.jsonl": "c330fcff6b28ab8c2668903f17a4b126791d6d14678dfa1c796145d3ef503837",
            },
            manual="the SwDA conversations as JSON lines, one conversation per line "
                   '({"conversation": ..., "utts": [{"speaker", "text", "act"}, ...]})',
        ),
        Dataset(
            name="swda-zhao",
            splits={"valid": "valid.jsonl", "test": "test.jsonl"},
            sha256={
                "valid.jsonl": "8b4c482ebae50dd22358135502fe46015f278aa1640df004dcffbddd71b05bd3",
                "test.jsonl": "455529e3c7d6fc7924f3fc1c6a284510689d9542633b50fc55099519cf189e16",
            },
            manual="Zhao et al.'s (2017) Switchboard evaluation dialogs as JSON lines, one "
                   "conversation per line",
        ),
    )
}

# (resolved path, mtime_ns, size, expected digest) of files already verified in this process.
_VERIFIED: set[tuple[str, int, int, str]] = set()


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$CYCLEVAE_DATA``, else the user cache.

    The cache is ``$XDG_CACHE_HOME/cyclevae/data`` if ``XDG_CACHE_HOME`` is set to an
    absolute path, otherwise ``~/.cache/cyclevae/data``. The directory need not exist.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get("CYCLEVAE_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return cache / "cyclevae" / "data"


_default_data_dir = data_dir  # reachable inside functions whose argument is named data_dir


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _known() -> str:
    return ", ".join(f"{d.name}:{{{','.join(d.splits)}}}" for d in DATASETS.values())


def _get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def _verify(path: Path, expected: str, hint: str) -> None:
    """Check ``path``'s sha256 once per (path, mtime, size) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, expected)
    if key in _VERIFIED:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise UserError(f"{path}: sha256 {actual} does not match the published {expected}; "
                        f"the file is damaged or modified: {hint}")
    _VERIFIED.add(key)


def _fix_hint(dataset: Dataset, directory: Path) -> str:
    if dataset.url:
        return (f"delete it and run `cyclevae data download {dataset.name}`, or set "
                "--data-dir/CYCLEVAE_DATA to a folder with the original files")
    return f"replace it with the original file in {directory} ({dataset.manual})"


def resolve_data_path(
    spec: str | os.PathLike[str],
    data_dir: Path | None = None,
    *,
    verify: bool = True,
) -> Path:
    """Resolve a data file given as a path or as ``NAME:SPLIT``.

    An existing path is returned as is (never checksummed: it is the user's own file).
    ``NAME:SPLIT`` becomes ``data_dir/NAME/FILE`` (``data_dir`` defaults to
    :func:`data_dir`); with ``verify`` its sha256 is checked against the published one, at
    most once per file version per process.

    Raises:
        UserError: unknown name or split (listing the known ones), missing file (saying how
            to get it), or checksum mismatch.
    """
    path = Path(spec)
    if path.exists():
        return path
    text = str(spec)
    name, colon, split = text.partition(":")
    if not colon or os.sep in name or (os.altsep and os.altsep in name):
        raise UserError(f"{text}: no such file (or use a known data set as NAME:SPLIT: "
                        f"{_known()})")
    dataset = DATASETS.get(name)
    if dataset is None or split not in dataset.splits:
        what = f"data set {name!r}" if dataset is None else f"split {split!r} of {name}"
        raise UserError(f"{text}: unknown {what}; known: {_known()}")
    directory = Path(data_dir if data_dir is not None else _default_data_dir()) / name
    file = directory / dataset.splits[split]
    if not file.is_file():
        how = (f"run `cyclevae data download {name}`" if dataset.url
               else f"place {', '.join(dataset.splits.values())} ({dataset.manual}) in {directory}")
        raise UserError(f"{file}: {name}:{split} not found; {how}, or set --data-dir or "
                        "CYCLEVAE_DATA to the folder that holds it")
    if verify:
        _verify(file, dataset.sha256[file.name], _fix_hint(dataset, directory))
    return file


def _fetch(url: str, dest: Path, progress: bool) -> None:
    """Download ``url`` into ``dest`` with a progress bar; UserError on network failure."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=Path(urllib.parse.urlparse(url).path).name or url,
                      disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise UserError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = (e.reason if isinstance(e, urllib.error.URLError) else None) or e
        raise UserError(f"could not download {url}: {reason}") from None


def _find_member(archive: tarfile.TarFile, wanted: str) -> tarfile.TarInfo:
    for member in archive.getmembers():
        if member.isfile() and member.name.removeprefix("./") == wanted:
            return member
    raise UserError(f"the downloaded archive has no file {wanted}")


def download_dataset(
    name: str,
    data_dir: Path,
    *,
    url: str | None = None,
    progress: bool = True,
    checksums: Mapping[str, str] | None = None,
    force: bool = False,
) -> list[Path]:
    """Download a known data set into ``data_dir/NAME/`` and verify it.

    Only ``ptb`` has a public archive (Mikolov's ``simple-examples.tgz``, :data:`PTB_URL`);
    its three files are extracted to ``data_dir/ptb/{train,valid,test}.txt``. The archive goes
    to a temporary file; every file is extracted to a temporary name, all checksums are
    verified, and only then are the files renamed into place, so a failure leaves nothing
    half-written. Files already present and valid are kept unless ``force``.

    Args:
        name: data set name (see :data:`DATASETS`).
        data_dir: the data directory (see :func:`data_dir`).
        url: archive URL instead of the default (a mirror, or ``file://`` for a local copy).
        progress: show a tqdm progress bar.
        checksums: file name -> sha256 to expect instead of the published ones (tests).
        force: download even if valid files are already present.

    Returns:
        The paths of the data set's files, in split order.

    Raises:
        UserError: unknown name, a data set without download (saying where to put its
            files), network failure, a bad archive, or a checksum mismatch.
    """
    dataset = _get_dataset(name)
    directory = Path(data_dir) / name
    targets = [directory / f for f in dataset.splits.values()]
    expected = dict(dataset.sha256, **(checksums or {}))
    if dataset.url is None or dataset.members is None:
        raise UserError(f"no public download is known for {name}: place "
                        f"{', '.join(dataset.splits.values())} ({dataset.manual}) in {directory}, "
                        "or set --data-dir or CYCLEVAE_DATA to a folder whose "
                        f"{name}/ subfolder holds them")
    if not force and all(t.is_file() and file_sha256(t) == expected[t.name] for t in targets):
        return targets
    directory.mkdir(parents=True, exist_ok=True)
    url = url or dataset.url
    temps: list[Path] = []
    try:
        fd, archive_tmp = tempfile.mkstemp(prefix=".download.", suffix=".tmp", dir=directory)
        os.close(fd)
        temps.append(Path(archive_tmp))
        _fetch(url, Path(archive_tmp), progress)
        staged: list[tuple[Path, Path]] = []
        try:
            with tarfile.open(archive_tmp, "r:*") as archive:
                for target in targets:
                    member = _find_member(archive, dataset.members[target.name])
                    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                               dir=directory)
                    temps.append(Path(tmp))
                    source = archive.extractfile(member)
                    assert source is not None  # a regular file member
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                    staged.append((Path(tmp), target))
        except (tarfile.TarError, EOFError, OSError) as e:
            raise UserError(f"{url}: not a valid .tgz archive ({e})") from None
        for tmp, target in staged:
            actual = file_sha256(tmp)
            if actual != expected[target.name]:
                raise UserError(f"{url}: {dataset.members[target.name]} has sha256 {actual}, "
                                f"expected {expected[target.name]}; nothing was installed")
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return targets
