"""fmnist/figures.py: each figure shows the data it is given."""

import numpy as np
import pytest

from fmnist import figures, models
from fmnist.data import CLASS_NAMES
from fmnist.errors import UserError
from fmnist.files import write_csv
from stages.evaluate import draw_figures


def random_case(seed, n=60):
    """Images in [0, 1], labels, and predictions that are right about two times in three."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 784), dtype=np.float32)
    labels = rng.integers(0, 10, n)
    predicted = np.where(rng.random(n) < 0.66, labels, rng.integers(0, 10, n))
    return images, labels, predicted


def history(epochs=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "epoch": np.arange(1, epochs + 1, dtype=float),
        "train_loss": np.sort(rng.random(epochs))[::-1],
        "train_accuracy": np.sort(rng.random(epochs)),
        "test_accuracy": rng.random(epochs),
    }


def test_read_csv_columns_gives_each_header_its_column(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("epoch,train_loss\n1,0.5\n2,0.25\n")
    columns = figures.read_csv_columns(path)
    assert list(columns) == ["epoch", "train_loss"]
    np.testing.assert_array_equal(columns["train_loss"], [0.5, 0.25])


@pytest.mark.parametrize("text, problem", [
    ("epoch,loss\n", "at least one row"),
    ("epoch,loss\n1,abc\n", "not a table of numbers"),
    ("epoch,loss\n1,2,3\n", "not a table with a header row"),
])
def test_read_csv_columns_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=problem) as error:
        figures.read_csv_columns(path)
    assert str(path) in str(error.value)


def test_confusion_figure_writes_every_count_in_its_cell():
    matrix = np.random.default_rng(1).integers(0, 500, (10, 10))
    figure = figures.confusion_figure(matrix, CLASS_NAMES, "title")
    axes = figure.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes.texts}
    assert cells == {(r, c): str(matrix[r, c]) for r in range(10) for c in range(10)}
    assert [t.get_text() for t in axes.get_xticklabels()] == CLASS_NAMES
    assert [t.get_text() for t in axes.get_yticklabels()] == CLASS_NAMES
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "actual")


def test_nn_history_figure_plots_loss_and_both_accuracies_per_epoch():
    data = history()
    loss_axes, accuracy_axes = figures.nn_history_figure(data).axes
    (loss_line,) = loss_axes.get_lines()
    np.testing.assert_array_equal(loss_line.get_xdata(), data["epoch"])
    np.testing.assert_array_equal(loss_line.get_ydata(), data["train_loss"])
    lines = {line.get_label(): line.get_ydata() for line in accuracy_axes.get_lines()}
    np.testing.assert_array_equal(lines["train accuracy"], data["train_accuracy"])
    np.testing.assert_array_equal(lines["test accuracy"], data["test_accuracy"])


def test_misclassified_figure_captions_each_image_with_true_and_predicted_names():
    images, labels, predicted = random_case(2)
    figure = figures.misclassified_figure(images, labels, predicted, CLASS_NAMES, "t", count=8, columns=4)
    expected = figures.misclassified_indices(labels, predicted, 8)
    shown = [axes for axes in figure.axes if axes.get_images()]
    assert len(shown) == len(expected) == 8
    for axes, index in zip(shown, expected, strict=True):
        title = axes.get_title()
        assert f"true: {CLASS_NAMES[labels[index]]}" in title and f"pred: {CLASS_NAMES[predicted[index]]}" in title
        np.testing.assert_array_equal(axes.get_images()[0].get_array(), images[index].reshape(28, 28))


def test_misclassified_figure_of_a_perfect_model_says_there_is_nothing_to_show():
    images, labels, _ = random_case(3)
    figure = figures.misclassified_figure(images, labels, labels, CLASS_NAMES, "t")
    assert not any(axes.get_images() for axes in figure.axes)
    assert any(text.get_text() == "no misclassified images" for axes in figure.axes for text in axes.texts)


def random_weights(seed):
    """{model: (10, 784) weights}, scales 100x apart; the largest weights negative in one, positive in the other."""
    rng = np.random.default_rng(seed)
    return {"scratch": rng.normal(size=(10, 784)) - 2, "nn": 100 * rng.normal(size=(10, 784)) + 200}


def test_weights_figure_draws_each_class_row_as_its_28_by_28_image():
    weights = random_weights(5)
    figure = figures.weights_figure(weights, CLASS_NAMES)
    panels = [axes for axes in figure.axes if axes.get_images()]
    assert len(panels) == 2 * len(CLASS_NAMES)
    for model_index, (model, matrix) in enumerate(weights.items()):
        row = panels[model_index * 10 : (model_index + 1) * 10]
        assert row[0].get_ylabel() == model
        # The scale ends where 99% of the weights' sizes do: a few large ones saturate instead of washing out the rest.
        limit = np.quantile(np.abs(matrix), 0.99)
        for k, axes in enumerate(row):
            assert axes.get_title() == CLASS_NAMES[k]
            image = axes.get_images()[0]
            # Row-major, as the pixels are stored: pixel (i, j) is feature 28 i + j.
            np.testing.assert_array_equal(image.get_array(), matrix[k].reshape(28, 28))
            assert image.get_array()[3, 5] == matrix[k][3 * 28 + 5]
            # Zero in the middle of the scale, so white means "no weight", in each model's own units.
            assert image.get_clim() == pytest.approx((-limit, limit))


def test_weights_figure_refuses_rows_with_the_intercept():
    with pytest.raises(ValueError, match=r"scratch: weights of shape \(10, 785\)"):
        figures.weights_figure({"scratch": np.zeros((10, 785))}, CLASS_NAMES)


def test_class_weights_leave_out_the_scratch_models_intercept_column():
    theta = np.arange(10 * 785, dtype=np.float32).reshape(10, 785)
    nn = {"weight": -np.arange(10 * 784, dtype=np.float32).reshape(10, 784), "bias": np.ones(10, np.float32)}
    np.testing.assert_array_equal(models.weights_and_bias("scratch", {"Theta": theta})[0], theta[:, 1:])
    np.testing.assert_array_equal(models.weights_and_bias("scratch", {"Theta": theta})[1], theta[:, 0])
    np.testing.assert_array_equal(models.weights_and_bias("nn", nn)[0], nn["weight"])


def test_draw_figures_writes_each_models_four_pngs(tmp_path):
    images, labels, predicted = random_case(4)
    loss = {"iteration": np.arange(1, 6, dtype=float), "loss": np.linspace(2, 1, 5)}
    weights = random_weights(6)
    curves = {"scratch": (loss, "train_scratch_loss.png"), "nn": (history(), "train_nn_history.png")}
    for name, (curve, curve_png) in curves.items():
        draw_figures(tmp_path / name, name, images, labels, predicted, np.eye(10, dtype=int), curve, curve_png,
                     weights[name])
        names = sorted(path.name for path in (tmp_path / name).iterdir())
        assert names == sorted([f"confusion_{name}.png", f"misclassified_{name}.png", f"weights_{name}.png", curve_png])


def texts_drawn(figure):
    """Every non-empty string the figure draws: titles, axis labels, tick labels, legends, annotations."""
    from matplotlib.text import Text

    return [text.get_text() for text in figure.findobj(Text) if text.get_text().strip()]


def each_figure(words):
    """The five kinds of figure, drawn from the same data, with `words` (None: English) and a neutral title."""
    images, labels, predicted = random_case(7)
    loss = history()
    return [
        figures.confusion_figure(np.eye(10, dtype=int), CLASS_NAMES, "T", words=words),
        figures.nn_history_figure(loss, "T", words=words),
        figures.scratch_loss_figure(loss["epoch"], loss["train_loss"], "T", words=words),
        figures.misclassified_figure(images, labels, predicted, CLASS_NAMES, "T", words=words),
        figures.misclassified_figure(images, labels, labels, CLASS_NAMES, "T", words=words),
        figures.weights_figure(random_weights(8), CLASS_NAMES, "T", words=words),
    ]


def test_figures_drawn_with_portuguese_words_hold_no_english_word_they_would_otherwise_draw():
    for english, portuguese in zip(each_figure(None), each_figure(figures.PORTUGUESE), strict=True):
        english_texts, portuguese_texts = texts_drawn(english), texts_drawn(portuguese)
        drawn_in_english = {word for word in figures.PORTUGUESE if any(word in text for text in english_texts)}
        assert drawn_in_english, "the English figure draws none of the words PORTUGUESE translates"
        left = {word for word in drawn_in_english if any(word in text for text in portuguese_texts)}
        assert not left, f"{english.axes[0].get_title()!r}: English words in the Portuguese figure: {left}"
        assert len(portuguese_texts) == len(english_texts)


def test_a_diverged_runs_nan_and_inf_survive_the_csv_round_trip(tmp_path):
    """write_csv writes NaN as `nan`; read_csv_columns reads it back as a number, while an empty field is refused."""
    path = tmp_path / "history.csv"
    write_csv(path, [{"epoch": 1, "train_loss": float("inf")}, {"epoch": 2, "train_loss": float("nan")}])
    assert path.read_text() == "epoch,train_loss\n1,inf\n2,nan\n"
    columns = figures.read_csv_columns(path)
    assert columns["train_loss"].iloc[0] == float("inf") and np.isnan(columns["train_loss"].iloc[1])
    path.write_text("epoch,train_loss\n1,0.5\n2\n")
    with pytest.raises(UserError, match=r"row 2, column 'train_loss'"):
        figures.read_csv_columns(path)
