"""Stage `download`: the four original Fashion-MNIST files, each checksum-verified.

Sources, tried in order for each file until one serves a verified copy:
`download.mirrors` from params.yaml (URLs or local folders), the copy
bundled in the repository, then the mirrors torchvision knows. A file that
fails its checksum is never kept; sources are only ever read from.
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from stages.common import StageError, atomic_dir, stage_main
from stages.params import load_params

DOWNLOAD_TIMEOUT_S = 30  # per connection attempt and per read; a silent server fails, not hangs
CHUNK_BYTES = 1 << 20
USER_AGENT = "fashion-mnist-dvc-pipeline"


# As torchvision publishes them for FashionMNIST (torchvision.datasets.FashionMNIST
# .resources and .mirrors; tests/test_download.py checks that they still agree).
# Written out here: importing torchvision to read eight strings took 2 s of
# this stage's 4.
RESOURCES = (
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)
TORCHVISION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def resources():
    """[(file name, md5)] of the four files, as torchvision publishes them for FashionMNIST."""
    return list(RESOURCES)


def torchvision_mirrors():
    return list(TORCHVISION_MIRRORS)


def md5_of(path):
    """Hex MD5 of the file at `path`, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(source):
    return "://" in source


def fetch(source, filename, workdir):
    """Copy or download `filename` from `source` into `workdir`; returns its path there.

    `source` is only ever read from.
    """
    target = Path(workdir) / filename
    if is_url(source):
        download(source.rstrip("/") + "/" + filename, target)
    else:
        shutil.copyfile(Path(source) / filename, target)
    return target


def download(url, target):
    """GET `url` into the file `target`; a body shorter than its Content-Length is an error."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
        announced = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
    # urllib returns a short body without complaint when the server hangs up early.
    if announced and announced.isdigit() and received != int(announced):
        raise ConnectionError(f"{url}: connection closed after {received} of {announced} bytes")


def why_unverified(path, md5):
    """None when `path` matches `md5`; else what is wrong with it, in a few words."""
    actual = md5_of(path)
    if actual == md5:
        return None
    from stages.flatten import read_idx  # numpy: only to say what is wrong with a bad file

    try:
        read_idx(path)
        detail = ""
    except StageError as error:
        detail = ": " + str(error).split(": ", 1)[1]
    return f"checksum mismatch (md5 {actual}, expected {md5}){detail}"


def fetch_verified(filename, md5, sources, destination, warn=None):
    """Put a verified `filename` into `destination`; returns the source used.

    Each source that fails is reported through `warn` (default: a line on
    stderr) before the next is tried. Raises StageError naming every source
    tried and why it failed.
    """
    warn = warn or _warn
    failures = []
    for position, source in enumerate(sources, start=1):
        with tempfile.TemporaryDirectory(dir=destination, prefix=".download-") as workdir:
            try:
                fetched = fetch(source, filename, workdir)
                problem = why_unverified(fetched, md5)
            except Exception as error:  # noqa: BLE001 - any failure means: try the next source
                problem = _one_line(error)
            if problem is None:
                shutil.move(fetched, Path(destination) / filename)
                return source
        failures.append(f"{source}: {problem}")
        warn(f"{filename} from {source}: {problem}" + ("; trying the next source" if position < len(sources) else ""))
    tried = "; ".join(failures) if failures else "no sources were given"
    raise StageError(f"no source served a verified {filename}; tried {tried}")


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}" if isinstance(error, OSError) else text


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", required=True, help="folder of the copy shipped with the repository")
    parser.add_argument("--out", required=True, help="folder for the verified files")
    args = parser.parse_args(argv)

    mirrors = load_params("download")["download"]["mirrors"]
    sources = [*mirrors, args.bundled, *torchvision_mirrors()]
    # All four files or none: the folder appears only once each is verified.
    with atomic_dir(args.out) as out:
        for filename, md5 in resources():
            source = fetch_verified(filename, md5, sources, out)
            print(f"{filename}: verified, from {source}")


if __name__ == "__main__":
    main()
