"""Downloader against local HTTP mirrors on 127.0.0.1 (never the real ones).

Each mirror is a path prefix on one test server whose first segment picks a
behaviour: a good copy, a copy with other content, a 500, a body cut short, a
stall, or an HTML page.
"""
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from model import datasets, download, idx

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


def make_files():
    rng = np.random.default_rng(7)
    raw = {IMAGES: idx.encode_idx(rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)),
           LABELS: idx.encode_idx(rng.integers(0, 10, 6, dtype=np.uint8))}
    gz = {name: gzip.compress(data, mtime=0) for name, data in raw.items()}
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in raw.items()}
    return raw, gz, sums


RAW, GZ, SHA256 = make_files()
OTHER = {name: gzip.compress(data[:-1] + bytes([data[-1] ^ 1])) for name, data in RAW.items()}


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        _, behaviour, filename = self.path.split("/", 2)
        if behaviour == "error":
            self.send_error(500, "Internal Server Error")
            return
        if filename not in GZ:
            self.send_error(404, "Not Found")
            return
        body = {"good": GZ, "other": OTHER}.get(behaviour, GZ)[filename]
        if behaviour == "html":
            body = b"<html><body>Moved to a new site</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if behaviour == "cut":
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "stall":
            self.wfile.write(body[:10])
            self.wfile.flush()
            self.server.release.wait(10)
            return
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def mirror(server, behaviour):
    return f"{server.base}/{behaviour}/"


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


def test_good_mirror(server, tmp_path):
    path = download.download_file(IMAGES, tmp_path, SHA256[IMAGES], mirrors=[mirror(server, "good")])
    assert Path(path).read_bytes() == GZ[IMAGES]
    assert files_in(tmp_path) == [IMAGES]
    assert server.requests == [f"/good/{IMAGES}"]


def test_progress_bar_does_not_change_the_result(server, tmp_path):
    path = download.download_file(LABELS, tmp_path, SHA256[LABELS],
                                  mirrors=[mirror(server, "good")], progress=True)
    np.testing.assert_array_equal(idx.read_labels(path), idx.parse_labels(RAW[LABELS], LABELS))


@pytest.mark.parametrize("first", ["other", "error", "cut", "html"])
def test_falls_back_to_next_mirror(server, tmp_path, first):
    path = download.download_file(IMAGES, tmp_path, SHA256[IMAGES],
                                  mirrors=[mirror(server, first), mirror(server, "good")])
    assert Path(path).read_bytes() == GZ[IMAGES]
    assert files_in(tmp_path) == [IMAGES]
    assert server.requests == [f"/{first}/{IMAGES}", f"/good/{IMAGES}"]


@pytest.mark.parametrize("behaviour, reason", [
    ("other", rf"checksum mismatch: decompressed SHA-256 is [0-9a-f]{{64}}, expected {SHA256[IMAGES]}"),
    ("error", r"HTTP 500 Internal Server Error"),
    ("cut", rf"connection closed after {len(GZ[IMAGES]) // 2} of {len(GZ[IMAGES]) + 1000} bytes "
            r"\(truncated body\)"),
    ("html", r"bad content: not a gzip file"),
])
def test_single_failure_is_explained_and_leaves_nothing(server, tmp_path, behaviour, reason):
    with pytest.raises(download.DownloadError) as info:
        download.download_file(IMAGES, tmp_path, SHA256[IMAGES], mirrors=[mirror(server, behaviour)])
    assert f"{mirror(server, behaviour)}{IMAGES}: " in str(info.value)
    assert info.match(reason)
    assert files_in(tmp_path) == []


def test_stalled_mirror_times_out(server, tmp_path):
    with pytest.raises(download.DownloadError, match=r"/stall/.*: timed out"):
        download.download_file(IMAGES, tmp_path, SHA256[IMAGES],
                               mirrors=[mirror(server, "stall")], timeout=0.3)
    assert files_in(tmp_path) == []


def test_all_mirrors_failing_names_each(server, tmp_path, closed_port_url):
    mirrors = [mirror(server, "other"), mirror(server, "error"), mirror(server, "cut"), closed_port_url]
    with pytest.raises(download.DownloadError) as info:
        download.download_file(LABELS, tmp_path, SHA256[LABELS], mirrors=mirrors)
    lines = str(info.value).splitlines()
    assert lines[0] == f"could not download {LABELS} from any mirror:"
    assert lines[1].startswith(f"  - {mirrors[0]}{LABELS}: checksum mismatch")
    assert lines[2] == f"  - {mirrors[1]}{LABELS}: HTTP 500 Internal Server Error"
    assert lines[3].startswith(f"  - {mirrors[2]}{LABELS}: connection closed after")
    assert lines[4].startswith(f"  - {closed_port_url}{LABELS}: cannot connect")
    assert "--data DIR" in lines[5]
    assert files_in(tmp_path) == []


def test_failed_download_keeps_the_previous_file(server, tmp_path):
    (tmp_path / LABELS).write_bytes(b"previous")
    with pytest.raises(download.DownloadError):
        download.download_file(LABELS, tmp_path, SHA256[LABELS], mirrors=[mirror(server, "cut")])
    assert files_in(tmp_path) == [LABELS]
    assert (tmp_path / LABELS).read_bytes() == b"previous"


def test_download_mnist_reuses_verified_cache_and_replaces_corrupt(server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / IMAGES).write_bytes(GZ[IMAGES])            # verified: kept
    (cache / LABELS).write_bytes(GZ[LABELS][:-20])      # truncated: fetched again
    paths = download.download_mnist(cache, checksums=SHA256, mirrors=[mirror(server, "good")])
    assert server.requests == [f"/good/{LABELS}"]
    assert paths == {IMAGES: str(cache / IMAGES), LABELS: str(cache / LABELS)}
    assert (cache / LABELS).read_bytes() == GZ[LABELS]
    assert files_in(cache) == sorted([IMAGES, LABELS])


def test_download_mnist_creates_the_cache_dir(server, tmp_path):
    cache = tmp_path / "a" / "b"
    download.download_mnist(cache, checksums=SHA256, mirrors=[mirror(server, "good")])
    assert files_in(cache) == sorted([IMAGES, LABELS])
    assert sorted(server.requests) == sorted(f"/good/{name}" for name in SHA256)


def test_default_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert download.default_cache_dir() == str(tmp_path / "digitdraw" / "mnist")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.default_cache_dir() == str(tmp_path / "home" / ".cache" / "digitdraw" / "mnist")


def test_shipped_mirrors_and_checksums_are_well_formed():
    assert all(url.startswith("https://") for url in download.MIRRORS)
    assert sorted(download.MNIST_SHA256) == sorted([
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in download.MNIST_SHA256.values())


# --- load_mnist through the cache (model/datasets.py) --------------------------------------

def test_load_mnist_downloads_into_cache_then_reuses_it(server, tmp_path):
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, splits=("train",), mirrors=[mirror(server, "error"), mirror(server, "good")],
                  checksums=SHA256)
    data = datasets.load_mnist(**kwargs)
    np.testing.assert_array_equal(data["train_images"], idx.parse_images(RAW[IMAGES], IMAGES))
    np.testing.assert_array_equal(data["train_labels"], idx.parse_labels(RAW[LABELS], LABELS))
    assert data["sha256"] == SHA256 and data["official"] is False
    assert data["source"] == str(cache)
    assert files_in(cache) == sorted(SHA256)
    requests_after_first_load = list(server.requests)
    assert len(requests_after_first_load) == 4  # each file: the failing mirror, then the good one
    again = datasets.load_mnist(**kwargs)
    assert server.requests == requests_after_first_load
    np.testing.assert_array_equal(again["train_images"], data["train_images"])


def test_load_mnist_without_download_says_what_is_missing(tmp_path):
    with pytest.raises(datasets.MnistError, match=r"train-images-idx3-ubyte.gz is missing and "
                                                  r"downloading is disabled"):
        datasets.load_mnist(cache_dir=tmp_path, download=False, checksums=SHA256, splits=("train",))


def test_load_mnist_without_download_refuses_corrupt_cache(tmp_path):
    (tmp_path / IMAGES).write_bytes(OTHER[IMAGES])
    with pytest.raises(datasets.MnistError, match=r"train-images-idx3-ubyte.gz is corrupt"):
        datasets.load_mnist(cache_dir=tmp_path, download=False, checksums=SHA256, splits=("train",))


def test_load_mnist_download_failure_propagates(server, tmp_path):
    with pytest.raises(download.DownloadError, match=r"/error/train-images-idx3-ubyte.gz: HTTP 500"):
        datasets.load_mnist(cache_dir=tmp_path, mirrors=[mirror(server, "error")], checksums=SHA256,
                            splits=("train",))
    assert files_in(tmp_path) == []


# --- python -m model.download ---------------------------------------------------------------

def test_cli_downloads_with_mirror_override(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download, "MNIST_SHA256", SHA256)
    code = download.main(["--cache-dir", str(tmp_path), "--mirror", mirror(server, "cut"),
                          "--mirror", mirror(server, "good")])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(out.split()) == sorted(str(tmp_path / name) for name in SHA256)
    assert files_in(tmp_path) == sorted(SHA256)


def test_cli_failure_exits_non_zero_with_the_story(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download, "MNIST_SHA256", SHA256)
    code = download.main(["--cache-dir", str(tmp_path), "--mirror", mirror(server, "error")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: could not download")
    assert "HTTP 500 Internal Server Error" in err
    assert files_in(tmp_path) == []
