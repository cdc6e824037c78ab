"""Download and unpack the Berkeley CycleGAN datasets.

``download_berkeley("horse2zebra", "data")`` fetches
``https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip`` into ``data/``
(temp file, then rename), unpacks it into ``data/horse2zebra/{trainA,trainB,testA,testB}``
(temp folder, then rename) and deletes the zip. A ``data/horse2zebra.zip`` already there
(copied by hand on an offline machine) is unpacked without any network access.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen  # module global so tests can monkeypatch it

from tqdm import tqdm

from cyclegan.common.errors import UserError
from cyclegan.common.files import atomic_write, umask_permissions

from .sources import BERKELEY_URL


class DatasetDownloadError(UserError, RuntimeError):
    """A dataset could not be fetched or unpacked; the message says where to put the files instead."""

__all__ = ["berkeley_url", "download_berkeley", "download_url", "unpack_zip"]

_CHUNK = 1 << 20


def berkeley_url(name: str) -> str:
    return BERKELEY_URL.format(name=name)


def _is_dataset(folder: Path) -> bool:
    return (folder / "trainA").is_dir() or (folder / "testA").is_dir()


def download_url(url: str, dest: str | os.PathLike, timeout: float = 60.0, progress: bool = True) -> Path:
    """Stream ``url`` into ``dest`` atomically (``dest`` appears only when complete).

    Network failures propagate (``URLError``, ``TimeoutError``, ``OSError``).
    """
    dest = Path(dest)
    with atomic_write(dest, suffix=".part") as tmp, open(tmp, "wb") as out, urlopen(url, timeout=timeout) as resp:
        headers = getattr(resp, "headers", None)
        total = headers.get("Content-Length") if headers is not None else None
        with tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
        ) as bar:
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    return dest


def unpack_zip(zip_path: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a dataset zip into ``target`` atomically.

    The archive may hold ``<name>/trainA/...`` (Berkeley zips), ``trainA/...`` directly, or any
    single top-level folder: its content becomes ``target``. Members escaping the folder
    (``../``, absolute paths) are refused.
    """
    zip_path, target = Path(zip_path), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            root = tmp.resolve()
            for member in zf.namelist():
                dest = (tmp / member).resolve()
                if dest != root and root not in dest.parents:
                    raise DatasetDownloadError(f"unsafe path {member!r} in {zip_path}")
            zf.extractall(tmp)
        shutil.rmtree(tmp / "__MACOSX", ignore_errors=True)
        entries = [p for p in tmp.iterdir() if not p.name.startswith(".")]
        if _is_dataset(tmp):
            content = tmp
        elif (tmp / target.name).is_dir():
            content = tmp / target.name
        elif len(entries) == 1 and entries[0].is_dir():
            content = entries[0]
        else:
            content = tmp
        if target.exists():
            if any(target.iterdir()):
                raise DatasetDownloadError(f"cannot unpack {zip_path}: {target} exists and is not empty")
            target.rmdir()
        if content == tmp:
            umask_permissions(tmp)  # mkdtemp made it 0700; the dataset folder is shared like any other
        os.replace(content, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_berkeley(
    name: str,
    data_dir: str | os.PathLike,
    *,
    folder: str | None = None,
    timeout: float = 60.0,
    keep_zip: bool = False,
    progress: bool = True,
) -> Path:
    """Make ``data_dir/<folder or name>`` hold the Berkeley dataset ``name``; returns that folder.

    Already there: nothing happens. ``data_dir/<name>.zip`` present: it is unpacked. Else it is
    downloaded first. Offline or failed: ``DatasetDownloadError`` (a ``RuntimeError``) saying where to put the files.
    """
    data_dir = Path(data_dir).expanduser().absolute()
    target = data_dir / (folder or name)
    if _is_dataset(target):
        return target
    url = berkeley_url(name)
    zip_path = data_dir / f"{name}.zip"
    if not zip_path.is_file():
        try:
            download_url(url, zip_path, timeout=timeout, progress=progress)
        except (URLError, TimeoutError, socket.timeout, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise DatasetDownloadError(
                f"Could not download {url} ({type(e).__name__}: {reason}). If this machine is offline, get that "
                f"zip elsewhere and put it at {zip_path} (it is unpacked on the next run) or unzip it so that "
                f"{target}/trainA exists; or point paths.data_dir=... at the folder that holds {target.name}/."
            ) from e
    if not zipfile.is_zipfile(zip_path):
        raise DatasetDownloadError(f"{zip_path} is not a zip file (interrupted or blocked download?); delete it and retry")
    unpack_zip(zip_path, target)
    if not keep_zip:
        zip_path.unlink(missing_ok=True)
    return target
