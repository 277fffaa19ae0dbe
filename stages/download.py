"""Stage `download`: the four original Fashion-MNIST files, each checksum-verified.

Sources, tried in order for each file until one serves a verified copy:
`download.mirrors` from params.yaml (URLs or local folders), the copy
bundled in the repository, then the mirrors torchvision knows. A file that
fails its checksum is never kept; sources are only ever read from.
"""

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

from stages.common import StageError, atomic_dir, stage_main
from stages.flatten import read_idx
from stages.params import load_params

DOWNLOAD_TIMEOUT_S = 30


def resources():
    """[(file name, md5)] as torchvision publishes them for FashionMNIST."""
    from torchvision.datasets import FashionMNIST

    return list(FashionMNIST.resources)


def torchvision_mirrors():
    from torchvision.datasets import FashionMNIST

    return list(FashionMNIST.mirrors)


def is_url(source):
    return "://" in source


def fetch(source, filename, workdir):
    """Copy or download `filename` from `source` into `workdir`; returns its path there."""
    from torchvision.datasets.utils import download_url

    target = Path(workdir) / filename
    if is_url(source):
        download_url(source.rstrip("/") + "/" + filename, str(workdir), filename)
    else:
        shutil.copyfile(Path(source) / filename, target)
    return target


def why_unverified(path, md5):
    """None when `path` matches `md5`; else what is wrong with it, in a few words."""
    from torchvision.datasets.utils import calculate_md5

    actual = calculate_md5(path)
    if actual == md5:
        return None
    try:
        read_idx(path)
        detail = ""
    except StageError as error:
        detail = ": " + str(error).split(": ", 1)[1]
    return f"checksum mismatch (md5 {actual}, expected {md5}){detail}"


def fetch_verified(filename, md5, sources, destination):
    """Put a verified `filename` into `destination`; returns the source used.

    Raises StageError naming every source tried and why it failed.
    """
    failures = []
    for source in sources:
        with tempfile.TemporaryDirectory(dir=destination, prefix=".download-") as workdir:
            try:
                fetched = fetch(source, filename, workdir)
            except Exception as error:  # noqa: BLE001 - any failure means: try the next source
                failures.append(f"{source}: {_one_line(error)}")
                continue
            problem = why_unverified(fetched, md5)
            if problem:
                failures.append(f"{source}: {problem}")
                continue
            shutil.move(fetched, Path(destination) / filename)
            return source
    raise StageError(f"no source served a verified {filename}; tried " + "; ".join(failures))


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
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    # All four files or none: the folder appears only once each is verified.
    with atomic_dir(args.out) as out:
        for filename, md5 in resources():
            source = fetch_verified(filename, md5, sources, out)
            print(f"{filename}: verified, from {source}")


if __name__ == "__main__":
    main()
