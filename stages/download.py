"""Stage `download`: the four original Fashion-MNIST files, each md5-verified.

Sources, tried in order for each file until one serves a verified copy:
`download.mirrors` from params.yaml (URLs or local folders), the copy
bundled in the repository, then the mirror torchvision knows. A file that
fails its checksum is never kept; sources are only ever read from.
"""

import argparse
import hashlib
import http.client
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from fmnist.data import FILES
from fmnist.errors import UserError, one_line_errors
from fmnist.files import atomic_dir
from fmnist.params import load_params

TORCHVISION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
TIMEOUT_S = 30  # per connection attempt and per read: a silent server fails, it does not hang


def fetch(source, filename, target):
    """Copy `filename` from the folder `source`, or download it from the URL `source`, to `target`."""
    if "://" not in source:
        shutil.copyfile(Path(source) / filename, target)
        return
    url = source.rstrip("/") + "/" + filename
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out)
        announced = response.headers.get("Content-Length")
    # urllib returns a short body without complaint when the server hangs up early.
    if announced and announced.isdigit() and target.stat().st_size != int(announced):
        raise ConnectionError(f"connection closed after {target.stat().st_size} of {announced} bytes")


def md5_of(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def fetch_verified(filename, md5, sources, destination):
    """Put a verified `filename` into the folder `destination`; returns the source that served it.

    Each source that fails is a warning on stderr, then the next is tried;
    when none serves it, a UserError names every source and why it failed.
    """
    failures = []
    for source in sources:
        with tempfile.TemporaryDirectory(dir=destination) as workdir:
            fetched = Path(workdir) / filename
            try:
                fetch(source, filename, fetched)
                actual = md5_of(fetched)
                problem = None if actual == md5 else f"checksum mismatch (md5 {actual}, expected {md5})"
            except (OSError, ValueError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
                problem = f"{type(error).__name__}: {' '.join(str(error).split())}"
            if problem is None:
                shutil.move(fetched, Path(destination) / filename)
                return source
        failures.append(f"{source}: {problem}")
        print(f"warning: {filename} from {source}: {problem}", file=sys.stderr, flush=True)
    raise UserError(f"no source served a verified {filename}; tried {'; '.join(failures)}")


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundled", required=True, help="folder of the copy shipped with the repository")
    parser.add_argument("--out", required=True, help="folder for the verified files")
    args = parser.parse_args(argv)

    mirrors = load_params("download")["download"]["mirrors"]
    sources = [*mirrors, args.bundled, TORCHVISION_MIRROR]
    # All four files or none: the folder appears only once each is verified.
    with atomic_dir(args.out) as out:
        for filename, md5 in FILES.items():
            source = fetch_verified(filename, md5, sources, out)
            print(f"{filename}: verified, from {source}")


if __name__ == "__main__":
    main()
