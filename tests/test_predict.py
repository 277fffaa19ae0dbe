"""tools/predict.py as a user runs it: the classes it gives, its bad-input lines, its figure, --rev.

The fast tests run main() on both models, trained for a moment on part of the data set, and recompute the
expected classes and probabilities with torch. The --rev test trains in a temporary git + DVC repository.
"""

import io
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, commit, dvc, set_params
from PIL import Image
from safetensors.torch import load_file, save_file

from fmnist import linear, softmax
from fmnist.data import CLASS_NAMES, read_idx
from tools import predict

BUNDLED = PROJECT_ROOT / "data" / "fashion-mnist"


@pytest.fixture(scope="module")
def test_images():
    return read_idx(BUNDLED / "t10k-images-idx3-ubyte.gz").reshape(-1, 28, 28)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with dvc.yaml and both models, each trained briefly on 10,000 training images."""
    folder = tmp_path_factory.mktemp("workspace")
    shutil.copy2(PROJECT_ROOT / "dvc.yaml", folder)
    images = torch.from_numpy(read_idx(BUNDLED / "train-images-idx3-ubyte.gz")[:10000] / np.float32(255))
    labels = torch.from_numpy(read_idx(BUNDLED / "train-labels-idx1-ubyte.gz")[:10000].astype(np.int64))
    nn_model, _, _ = linear.train((images, labels), (images[:10], labels[:10]), lr=0.1, momentum=0.5,
                                  batch_size=50, epochs=1, seed=0)
    descent = softmax.gradient_descent(softmax.add_intercept(images), softmax.one_hot(labels, 10),
                                       lr=0.1, max_iter=100, tol=0)
    (folder / "data" / "models").mkdir(parents=True)
    save_file(dict(nn_model.state_dict()), model_files(folder)["nn"])
    save_file({"Theta": descent.Theta}, model_files(folder)["scratch"])
    return folder


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    """The workspace, made the current folder: predict runs from the project's root."""
    monkeypatch.chdir(workspace)
    return workspace


def run_predict(capsys, *args):
    """(exit status, stdout, stderr) of `python -m tools.predict ARGS`, run in this process."""
    try:
        predict.main([str(arg) for arg in args])
        status = 0
    except SystemExit as exit:
        status = exit.code
    printed = capsys.readouterr()
    return status, printed.out, printed.err


def expected_probabilities(files, images):
    """{model: (N, 10) probabilities} of (N, 28, 28) uint8 images, {model: its file}: by torch, not numpy."""
    pixels = torch.from_numpy(images.reshape(len(images), 784) / np.float32(255))
    expected = {}
    with torch.inference_mode():
        if "nn" in files:
            nn_model = linear.make_model()
            nn_model.load_state_dict(load_file(files["nn"]))
            expected["nn"] = torch.softmax(nn_model(pixels), dim=1).numpy()
        if "scratch" in files:
            Theta = load_file(files["scratch"])["Theta"]
            expected["scratch"] = softmax.softmax(softmax.add_intercept(pixels), Theta).numpy()
    return expected


def model_files(folder):
    return {name: folder / "data" / "models" / f"{name}.safetensors" for name in ("nn", "scratch")}


def as_photo(image, rng):
    """A 28 x 28 image as a photo: dark on light paper, 3 to 10 times larger, off-centre, with a camera's noise."""
    side = int(rng.integers(90, 300))
    upscaled = np.asarray(Image.fromarray(255 - image).resize((side, side), Image.Resampling.BICUBIC))
    left, top, right, bottom = (int(margin) for margin in rng.integers(5, side // 2, size=4))
    paper = np.full((side + top + bottom, side + left + right), 240.0)
    paper[top:top + side, left:left + side] = upscaled * (240 / 255)
    paper += rng.normal(0, 3, paper.shape)
    return Image.fromarray(np.clip(np.rint(paper), 0, 255).astype(np.uint8))


def test_images_of_the_test_set_get_the_class_and_probabilities_the_models_give(in_workspace, test_images, tmp_path,
                                                                                 capsys):
    images = test_images[:200]
    paths = []
    for index, image in enumerate(images):
        # As the data set holds it, in other pixel formats, or inverted (dark on white).
        mode = ["L", "RGB", "P", "I;16", "inverted"][index % 5]
        picture = {"I;16": Image.fromarray(image.astype(np.uint16) * 257),
                   "inverted": Image.fromarray(255 - image)}.get(mode) or Image.fromarray(image).convert(mode)
        paths.append(tmp_path / f"{index}-{mode.replace(';', '')}.png")
        picture.save(paths[-1])
    status, out, err = run_predict(capsys, "--json", *paths)
    assert (status, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert [record["image"] for record in records] == [str(path) for path in paths]
    expected = expected_probabilities(model_files(in_workspace), images)
    for name in ("nn", "scratch"):
        assert [record[name][0]["class"] for record in records] == [CLASS_NAMES[i] for i in expected[name].argmax(1)]
        top_three = np.sort(expected[name], axis=1)[:, ::-1][:, :3]
        got = [[entry["probability"] for entry in record[name]] for record in records]
        np.testing.assert_allclose(got, top_three, rtol=1e-4, atol=1e-6)


def test_photos_get_the_class_of_the_image_they_show(in_workspace, test_images, tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for index, image in enumerate(test_images[:100]):
        paths.append(tmp_path / f"photo-{index}.{'jpg' if index % 2 else 'png'}")  # half of them JPEG, lossy
        as_photo(image, rng).save(paths[-1], quality=90)
    status, out, _ = run_predict(capsys, "--json", *paths)
    assert status == 0
    expected = expected_probabilities(model_files(in_workspace), test_images[:100])
    for name in ("nn", "scratch"):
        got = [json.loads(line)[name][0]["class"] for line in out.splitlines()]
        agreement = np.mean([cls == CLASS_NAMES[i] for cls, i in zip(got, expected[name].argmax(1), strict=True)])
        assert agreement >= 0.9, (name, agreement)


def test_the_pages_example_photos_get_their_class_and_a_figure(in_workspace, tmp_path, capsys):
    examples = {"sneaker.jpg": "Sneaker", "bag.jpg": "Bag", "dress.jpg": "Dress"}
    paths = [PROJECT_ROOT / "reports" / "predict" / name for name in examples]
    status, out, _ = run_predict(capsys, *paths, "--figure", tmp_path / "figures" / "examples.png")
    assert status == 0
    with Image.open(tmp_path / "figures" / "examples.png") as figure:
        assert figure.format == "PNG"
    lines = out.splitlines()
    # Per image its path, then a line per model that starts with the most probable class.
    assert lines[::3] == [str(path) for path in paths]
    for shown, cls in zip(zip(lines[1::3], lines[2::3], strict=True), examples.values(), strict=True):
        assert [line.split()[:2] for line in shown] == [["nn", cls], ["scratch", cls]], shown


def test_bad_images_are_one_line_each_and_the_others_are_still_predicted(in_workspace, test_images, tmp_path, capsys,
                                                                         monkeypatch):
    good = tmp_path / "good.png"
    Image.fromarray(test_images[0]).save(good)
    Image.fromarray(test_images[0]).resize((50, 50)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 50 x 50 is then too large to decode safely
    encoded = io.BytesIO()
    Image.fromarray(test_images[0]).save(encoded, format="JPEG")
    contents = {"notes.png": b"shopping list\n", "empty.jpg": b"", "cut.jpg": encoded.getvalue()[:400]}
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.png").mkdir()
    bad = ["missing.png", *contents, "huge.png", "folder.png"]
    arguments = [good, *(tmp_path / name for name in bad), good]

    status, out, err = run_predict(capsys, *arguments)
    assert status == 2
    assert [line.split(": ")[:2] for line in err.splitlines()] == [["error", str(tmp_path / name)] for name in bad]
    assert out.splitlines()[0] == out.splitlines()[3] == str(good)

    status, out, err = run_predict(capsys, "--json", *arguments)
    records = [json.loads(line) for line in out.splitlines()]
    assert (status, err) == (2, "")
    assert [record["image"] for record in records] == [str(path) for path in arguments]
    assert [sorted(record) for record in records[1:-1]] == [["error", "image"]] * len(bad)


@pytest.mark.parametrize(("args", "value"), [(["--model", "svm"], "svm"), (["--figure", "."], "."),
                                             (["--rev", "v1"], "v1"), (["--no-such-option"], "--no-such-option")])
def test_a_bad_argument_is_refused_with_its_value_and_exit_2(in_workspace, capsys, args, value):
    # The workspace is no git repository: it has no revision v1.
    status, out, err = run_predict(capsys, *args, PROJECT_ROOT / "reports" / "predict" / "bag.jpg")
    assert (status, out) == (2, "")
    assert "error: " in err.splitlines()[-1] and value in err.splitlines()[-1], err


def test_a_missing_model_is_one_line_and_exit_2(workspace, tmp_path, capsys, monkeypatch):
    shutil.copytree(workspace, tmp_path / "project")
    model_files(tmp_path / "project")["nn"].unlink()
    monkeypatch.chdir(tmp_path / "project")
    status, out, err = run_predict(capsys, PROJECT_ROOT / "reports" / "predict" / "bag.jpg")
    assert (status, out, len(err.splitlines())) == (2, "", 1)
    assert "data/models/nn.safetensors" in err
    assert run_predict(capsys, "--model", "scratch", PROJECT_ROOT / "reports" / "predict" / "bag.jpg")[0] == 0


@pytest.mark.slow
def test_rev_reads_the_model_of_another_commit(project, test_images, tmp_path, capsys, monkeypatch):
    image = tmp_path / "boot.png"
    Image.fromarray(test_images[0]).save(image)
    dvc(project, "repro", "train_nn")
    commit(project, "first model")
    shutil.copy2(model_files(project)["nn"], tmp_path / "first.safetensors")
    set_params(project, {"train_nn.lr": 0.5})
    dvc(project, "repro", "train_nn")
    commit(project, "second model")
    monkeypatch.chdir(project)

    status, out, _ = run_predict(capsys, "--json", "--model", "nn", "--rev", "HEAD~1", image)
    assert status == 0
    expected = expected_probabilities({"nn": tmp_path / "first.safetensors"}, test_images[:1])["nn"][0]
    got = json.loads(out)["nn"]
    assert got[0]["class"] == CLASS_NAMES[expected.argmax()]
    np.testing.assert_allclose([entry["probability"] for entry in got], np.sort(expected)[::-1][:3], rtol=1e-4)
    workspace_out = run_predict(capsys, "--json", "--model", "nn", image)[1]
    assert json.loads(workspace_out)["nn"] != got  # the workspace holds the second model

    for rev in ("no-such-branch", "HEAD~2"):  # HEAD~2: the project before any training
        status, out, err = run_predict(capsys, "--model", "nn", "--rev", rev, image)
        assert (status, out) == (2, "") and err.startswith(f"error: --rev {rev!r}: ") and len(err.splitlines()) == 1
