"""Fetch the four MNIST files from public mirrors into a local cache.

    python -m model.download [--cache-dir DIR] [--mirror URL ...]

Mirrors come and go and connections drop, so each file is tried mirror by
mirror; a body is only trusted once the SHA-256 of its *decompressed* bytes
matches (the .gz bytes differ between mirrors, the content does not). Bytes
land in a temporary file in the cache directory and are moved into place with
os.replace, so an interrupted or bad download never leaves a partial file.
"""
import argparse
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request

from . import idx

# The mirrors torchvision uses; both serve the original LeCun .gz files.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 of the decompressed IDX bytes (identical to the official files).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

USER_AGENT = "digitdraw/0.1 (+MNIST downloader)"
CHUNK_BYTES = 1 << 16
# The largest compressed file is ~9.9 MB; anything far bigger is not MNIST.
MAX_DOWNLOAD_BYTES = 64 * 2**20


class DownloadError(OSError):
    """No mirror delivered a verified copy; the message lists what each one did."""


class _MirrorFailure(Exception):
    """One mirror's attempt went wrong in a way worth reporting and moving past."""


def default_cache_dir():
    """~/.cache/digitdraw/mnist, honouring XDG_CACHE_HOME."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "digitdraw", "mnist")


def content_sha256(path):
    """SHA-256 of the file's decompressed bytes (raises idx.IdxError if unreadable)."""
    return hashlib.sha256(idx.read_bytes(path)).hexdigest()


def _progress_bar(enabled, total, name):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


def _fetch(url, out, timeout, progress, max_bytes):
    """Stream url into the open file `out`; a short body is an error, not a file."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise _MirrorFailure(f"announces {total} bytes, more than the {max_bytes} allowed")
        bar = _progress_bar(progress, total, url.rsplit("/", 1)[-1])
        received = 0
        try:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise _MirrorFailure(f"sent more than the {max_bytes} bytes allowed")
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and received != total:
        raise _MirrorFailure(f"connection closed after {received} of {total} bytes (truncated body)")
    if received == 0:
        raise _MirrorFailure("empty response body")


def _describe(exc):
    """One line a person can act on, for each way a mirror can fail."""
    if isinstance(exc, _MirrorFailure):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} bytes (truncated body)"
    if isinstance(exc, idx.IdxError):
        return f"bad content: {str(exc).split(': ', 1)[-1]}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def download_file(filename, cache_dir, sha256, mirrors=MIRRORS, timeout=30.0, progress=False,
                  max_bytes=MAX_DOWNLOAD_BYTES):
    """Download `filename` into cache_dir from the first mirror whose copy verifies.

    Returns the final path. Raises DownloadError naming every mirror's failure.
    """
    if not mirrors:
        raise DownloadError(f"{filename}: no mirrors configured")
    os.makedirs(cache_dir, exist_ok=True)
    final = os.path.join(cache_dir, filename)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".part-", suffix="-" + filename)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout, progress, max_bytes)
            digest = content_sha256(tmp)
            if digest != sha256:
                raise _MirrorFailure(f"checksum mismatch: decompressed SHA-256 is {digest}, "
                                     f"expected {sha256}")
            os.replace(tmp, final)
            return final
        except (_MirrorFailure, OSError, http.client.HTTPException, idx.IdxError) as exc:
            failures.append(f"{url}: {_describe(exc)}")
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DownloadError(
        f"could not download {filename} from any mirror:\n  - " + "\n  - ".join(failures)
        + "\nCheck the network, or download the four MNIST files by hand and pass their directory"
          " (--data DIR).")


def download_mnist(cache_dir=None, checksums=None, mirrors=MIRRORS, timeout=30.0, progress=False):
    """Make sure every file is in the cache with the right content; returns {filename: path}.

    Files already cached and verified are not fetched again; a cached file
    whose content does not verify is replaced.
    """
    cache_dir = cache_dir or default_cache_dir()
    checksums = MNIST_SHA256 if checksums is None else checksums
    paths = {}
    for filename, sha256 in checksums.items():
        path = os.path.join(cache_dir, filename)
        try:
            cached_ok = os.path.isfile(path) and content_sha256(path) == sha256
        except idx.IdxError:
            cached_ok = False
        paths[filename] = path if cached_ok else download_file(
            filename, cache_dir, sha256, mirrors=mirrors, timeout=timeout, progress=progress)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m model.download",
                                     description="Download and verify the four MNIST files.")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help=f"where to put them (default {default_cache_dir()})")
    parser.add_argument("--mirror", metavar="URL", action="append",
                        help="base URL to try instead of the built-in mirrors (repeatable, tried in order)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection (default 30)")
    args = parser.parse_args(argv)
    try:
        paths = download_mnist(args.cache_dir, mirrors=tuple(args.mirror or MIRRORS),
                               timeout=args.timeout, progress=sys.stderr.isatty())
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
