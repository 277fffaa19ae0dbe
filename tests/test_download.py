"""stages/download.py: bad copies from folders and HTTP mirrors are reported, skipped, never kept.

Everything is served from this machine: folders under tmp_path and an HTTP
server on 127.0.0.1 that the tests start and stop. torchvision's mirrors
are replaced by a dead local port wherever they could be reached.
"""

import gzip
import hashlib
import http.server
import socket

import pytest
from conftest import PROJECT_ROOT, LocalServer

from fmnist.data import FILES as MD5
from stages import download

BUNDLED = PROJECT_ROOT / "data" / "fashion-mnist"
TORCHVISION_MIRROR = download.TORCHVISION_MIRROR  # the tests replace it by a dead local port
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def digest(folder):
    return {p.name: md5_of(p) for p in sorted(folder.iterdir())}


def rewritten(name, change):
    """The bundled file, decompressed, changed by `change(bytearray)`, and compressed again."""
    content = bytearray(gzip.decompress((BUNDLED / name).read_bytes()))
    change(content)
    return gzip.compress(bytes(content), compresslevel=1)


def flip_first_label(content):
    content[8] = (content[8] + 1) % 10


# Each defect: the bad bytes (None: the file is absent) and what the report must say.
DEFECTS = {
    "checksum": (lambda name: rewritten(name, flip_first_label), "checksum mismatch (md5 "),
    "truncated": (lambda name: (BUNDLED / name).read_bytes()[:3000], "checksum mismatch (md5 "),
    "missing": (lambda name: None, None),
}
MISSING_REPORT = {"folder": "FileNotFoundError: [Errno 2] No such file or directory", "http": "HTTP Error 404"}


class Server(LocalServer):
    """An HTTP server on 127.0.0.1: {name: bytes} served as files; names in `hang_up` stop early."""

    def __init__(self, files, hang_up=()):
        self.files, self.hang_up, self.requests = dict(files), set(hang_up), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((self.command, name))
                body = server.files.get(name)
                if body is None:
                    self.send_error(404, "File not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A hang-up promises the whole file and sends a fifth of it.
                self.wfile.write(body[: len(body) // 5] if name in server.hang_up else body)
                if name in server.hang_up:
                    self.close_connection = True

            def do_PUT(self):  # noqa: N802 - recorded, so that a write attempt would show
                server.requests.append((self.command, self.path))
                self.send_error(405)

            do_POST = do_DELETE = do_PUT  # noqa: N815

            def log_message(self, *args):
                pass

        super().__init__(Handler, path="/fashion/")


def dead_url():
    """A URL on a local port nothing listens on: refused at once, nothing leaves the machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def no_internet_mirrors(monkeypatch):
    monkeypatch.setattr(download, "TORCHVISION_MIRROR", dead_url())
    # The local server is reached directly, here and in the dvc processes, even behind a proxy.
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def bad_folder(folder, files):
    """A folder holding {name: bytes or None}; None leaves the name out."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if content is not None:
            (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("transport", ["folder", "http"])
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_bad_copy_is_reported_and_the_bundled_copy_wins(tmp_path, capsys, transport, defect):
    name = TEST_LABELS
    make, report = DEFECTS[defect]
    report = report or MISSING_REPORT[transport]
    files = {name: make(name)}
    destination = tmp_path / "out"
    destination.mkdir()
    if transport == "folder":
        mirror = bad_folder(tmp_path / "mirror", files)
        before = digest(mirror)
        used = download.fetch_verified(name, MD5[name], [str(mirror), str(BUNDLED)], destination)
        assert digest(mirror) == before  # a mirror is only read from
        mirror_name = str(mirror)
    else:
        with Server({k: v for k, v in files.items() if v is not None}) as server:
            used = download.fetch_verified(name, MD5[name], [server.url, str(BUNDLED)], destination)
        assert server.requests == [("GET", name)]
        mirror_name = server.url

    assert used == str(BUNDLED)
    assert [p.name for p in destination.iterdir()] == [name]  # no temporary folder left
    assert md5_of(destination / name) == MD5[name]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: {name} from {mirror_name}: ") and report in warnings[0], warnings[0]


def test_a_server_that_hangs_up_early_is_reported(tmp_path, capsys):
    name = TEST_LABELS
    destination = tmp_path / "out"
    destination.mkdir()
    with Server({name: (BUNDLED / name).read_bytes()}, hang_up={name}) as server:
        used = download.fetch_verified(name, MD5[name], [server.url, str(BUNDLED)], destination)
    assert used == str(BUNDLED)
    warning = capsys.readouterr().err
    assert warning.startswith(f"warning: {name} from {server.url}: ") and warning.count("\n") == 1, warning


def test_when_every_source_is_bad_the_stage_names_each_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    mirror = bad_folder(tmp_path / "mirror", {TRAIN_IMAGES: (BUNDLED / TRAIN_IMAGES).read_bytes()[:5000]})
    bundled = bad_folder(tmp_path / "bundled", {
        TRAIN_IMAGES: rewritten(TRAIN_IMAGES, flip_first_label),
        **{name: (BUNDLED / name).read_bytes() for name in list(MD5)[1:]},
    })
    dead_torchvision = dead_url()
    monkeypatch.setattr(download, "TORCHVISION_MIRROR", dead_torchvision)
    monkeypatch.chdir(project)

    with Server({TRAIN_IMAGES: b"<html>not here</html>"}) as server:
        (project / "params.yaml").write_text(f"download:\n  mirrors: ['{mirror}', '{server.url}']\n")
        with pytest.raises(SystemExit) as caught:
            download.main(["--bundled", str(bundled), "--out", "data/raw"])

    assert caught.value.code != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n")
    error = errors[0]
    assert error.startswith(f"error: no source served a verified {TRAIN_IMAGES}; tried ")
    reasons = error.split("; tried ", 1)[1].split("; ")
    assert len(reasons) == 4, error
    assert reasons[0].startswith(f"{mirror}: checksum mismatch")
    assert reasons[1].startswith(f"{server.url}: checksum mismatch")
    assert reasons[2].startswith(f"{bundled}: checksum mismatch")
    assert reasons[3].startswith(f"{dead_torchvision}: URLError") and "Connection refused" in reasons[3]
    assert list((project / "data").iterdir()) == []  # no data/raw, not even a temporary one


def test_the_file_list_and_mirror_are_torchvisions():
    """The stage names the files, their md5 and the mirror without importing torchvision: the same values."""
    from torchvision.datasets import FashionMNIST

    assert list(MD5.items()) == [tuple(resource) for resource in FashionMNIST.resources]
    assert list(FashionMNIST.mirrors) == [TORCHVISION_MIRROR]
