"""Fashion-MNIST's files and arrays: the four IDX files, and the (N, 784) pixel arrays the models read.

`flatten` stores the pixels as uint8 (a quarter of float32, so every
version the DVC cache keeps is small). `load_split` is the one place
pixels are scaled, as the notebook's ToTensor does: uint8 / 255 in
float32, in [0, 1].
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from fmnist.errors import UserError

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
IMAGE_SIDE = 28
N_FEATURES = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = len(CLASS_NAMES)
# Each split's images and labels file, their md5 as torchvision publishes them, and the item count.
SPLITS = {
    "train": {"images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
              "labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
              "count": 60000},
    "test": {"images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
             "labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
             "count": 10000},
}
FILES = {name: md5 for split in SPLITS.values() for name, md5 in (split["images"], split["labels"])}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 and 1 dimensions


def read_idx(path):
    """Decompress and check one of the four IDX files: (count, 784) images or (count,) labels, uint8."""
    path = Path(path)
    split = next(s for s in SPLITS.values() if path.name in (s["images"][0], s["labels"][0]))
    is_images = path.name == split["images"][0]
    magic, count = (IMAGES_MAGIC if is_images else LABELS_MAGIC), split["count"]
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"{path}: not readable gzip data ({' '.join(str(error).split())})") from None
    header_ints = 4 if is_images else 2
    if len(data) < 4 * header_ints:
        raise UserError(f"{path}: IDX header is cut short ({len(data)} bytes)")
    header = np.frombuffer(data, dtype=">u4", count=header_ints)
    if header[0] != magic:
        raise UserError(f"{path}: IDX magic number is {header[0]}, expected {magic}")
    if header[1] != count:
        raise UserError(f"{path}: IDX header says {header[1]} items, expected {count}")
    if is_images and tuple(header[2:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise UserError(f"{path}: IDX images are {header[2]}x{header[3]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    item_size = N_FEATURES if is_images else 1
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * header_ints)
    if body.size != count * item_size:
        raise UserError(f"{path}: IDX body holds {body.size} bytes, the header promises {count * item_size}")
    if not is_images and body.max() >= N_CLASSES:
        raise UserError(f"{path}: label {body.max()} is outside 0..{N_CLASSES - 1}")
    return body.reshape(count, N_FEATURES) if is_images else body


def read_split(raw_dir, split):
    """One split's two IDX files from `raw_dir`: ((N, 784) uint8 images, (N,) uint8 labels)."""
    files = SPLITS[split]
    return read_idx(Path(raw_dir) / files["images"][0]), read_idx(Path(raw_dir) / files["labels"][0])


def save_split(flat_dir, split, images, labels):
    """Write `{split}_images.npy` and `{split}_labels.npy` into `flat_dir`."""
    np.save(Path(flat_dir) / f"{split}_images.npy", images)
    np.save(Path(flat_dir) / f"{split}_labels.npy", labels)


def load_split_arrays(flat_dir, split):
    """(N, 784) float32 pixels in [0, 1] and (N,) int64 labels, as numpy arrays."""
    flat_dir = Path(flat_dir)
    images = _load_npy(flat_dir / f"{split}_images.npy")
    labels = _load_npy(flat_dir / f"{split}_labels.npy")
    if images.dtype != np.uint8 or images.shape != (labels.shape[0], N_FEATURES):
        raise UserError(f"{flat_dir}: {split} images are {images.dtype} {images.shape}, not the uint8 "
                        f"(N, {N_FEATURES}) pixels of {labels.shape[0]} labels; rerun `dvc repro flatten`")
    return np.divide(images, np.float32(255), dtype=np.float32), labels.astype(np.int64)


def load_split(flat_dir, split):
    """load_split_arrays as torch tensors: (N, 784) float32 and (N,) int64."""
    import torch

    images, labels = load_split_arrays(flat_dir, split)
    return torch.from_numpy(images), torch.from_numpy(labels)


def _load_npy(path):
    try:
        # Never unpickles: a file that is not a plain array is refused, not executed.
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        problem = "file not found"
    except (OSError, ValueError, EOFError) as error:
        problem = " ".join(str(error).split()) or type(error).__name__
    raise UserError(f"{path}: cannot be read ({problem}); rerun `dvc repro flatten`")
