"""Plant each bug of docs/testing.md's table, one at a time, in a copy of the project, and run the test that must fail.

    python tests/planted_bugs.py                 # every bug: about a minute
    python tests/planted_bugs.py -k softmax      # the bugs whose name or file holds "softmax"
    python tests/planted_bugs.py --markdown      # the table for docs/testing.md

Each bug is a realistic edit (swapped arguments, a dropped term, the wrong
split) of one exact piece of text. The copy holds the project's tracked
files and nothing else, so the working tree is never touched. Before any
bug is planted, every named test must pass on the unchanged copy: a test
that fails anyway proves nothing. A bug is caught when its test then fails.
tests/test_planted_bugs.py checks, quickly, that each piece of text still
appears exactly once where the bug is planted and that docs/testing.md
lists every bug; this script is the slow half, run by hand.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PlantedBug:
    name: str
    path: str  # relative to the project root
    old: str  # appears exactly once in `path`
    new: str
    test: str  # a pytest node id that fails once the bug is planted

    def plant(self, root):
        target = Path(root) / self.path
        text = target.read_text(encoding="utf-8")
        if text.count(self.old) != 1:
            raise ValueError(f"{self.path}: the text of '{self.name}' appears {text.count(self.old)} times, not once")
        target.write_text(text.replace(self.old, self.new), encoding="utf-8")
        return text


BUGS = [
    PlantedBug("intercept read from the last column", "stages/evaluate.py",
               "images @ Theta[:, 1:].T + Theta[:, 0]", "images @ Theta[:, :-1].T + Theta[:, -1]",
               "tests/test_evaluate.py::test_predict_scratch_is_softmax_predict_with_the_intercept_in_column_0"),
    PlantedBug("nn bias dropped in evaluate", "stages/evaluate.py",
               'images @ weights["weight"].T + weights["bias"]', 'images @ weights["weight"].T',
               "tests/test_evaluate.py::test_predict_nn_is_nn_linears_arg_max"),
    PlantedBug("confusion_matrix arguments swapped", "stages/evaluate.py",
               "confusion_matrix(true_labels, predicted, labels=LABELS)",
               "confusion_matrix(predicted, true_labels, labels=LABELS)",
               "tests/test_evaluate.py::test_confusion_csv_has_a_row_per_actual_class_and_a_column_per_predicted_class"),
    PlantedBug("predictions columns swapped", "stages/evaluate.py",
               '{"actual": names[np.asarray(true_labels)], "predicted": names[np.asarray(predicted)]}',
               '{"actual": names[np.asarray(predicted)], "predicted": names[np.asarray(true_labels)]}',
               "tests/test_evaluate.py::test_predictions_csv_lists_each_test_image_in_order_actual_then_predicted"),
    PlantedBug("train_nn final metrics on the test split", "stages/train_nn.py",
               "loss_and_accuracy(model, *(t.to(device) for t in train_set))",
               "loss_and_accuracy(model, *(t.to(device) for t in test_set))",
               "tests/test_train_nn.py::test_the_stage_measures_train_accuracy_on_the_training_split"),
    PlantedBug("no reshuffle after the first epoch", "stages/train_nn.py",
               "torch.randperm(images.shape[0], generator=shuffle)",
               "torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))",
               "tests/test_train_nn.py::test_same_batches_give_the_notebooks_model_epoch_after_epoch"),
    PlantedBug("momentum buffer reset each epoch", "stages/train_nn.py",
               "    for epoch in range(1, epochs + 1):\n",
               "    for epoch in range(1, epochs + 1):\n"
               "        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, fused=True)\n",
               "tests/test_train_nn.py::test_same_batches_give_the_notebooks_model_epoch_after_epoch"),
    PlantedBug("zero_grad forgotten", "stages/train_nn.py",
               "            optimizer.zero_grad()\n", "",
               "tests/test_divergence.py::test_train_nn_with_a_sane_rate_does_not_diverge"),
    PlantedBug("gradient step without lr", "stages/softmax.py",
               "Theta = Theta - lr * grad", "Theta = Theta - grad",
               "tests/test_divergence.py::test_gradient_descent_stops_at_the_first_diverged_iteration"),
    PlantedBug("cross-entropy summed, not averaged", "stages/softmax.py",
               ".sum(dim=1).mean()", ".sum(dim=1).sum()",
               "tests/test_divergence.py::test_gradient_descent_with_a_sane_rate_does_not_diverge"),
    PlantedBug("pixels scaled by 256", "stages/flatten.py",
               "np.divide(images, np.float32(255)", "np.divide(images, np.float32(256)",
               "tests/test_flatten.py::test_the_stage_on_the_bundled_files_writes_uint8_arrays"),
    PlantedBug("train_scratch trains on the test split", "stages/train_scratch.py",
               'load_split(args.data, "train")', 'load_split(args.data, "test")',
               "tests/test_train_scratch.py::test_the_stage_measures_train_accuracy_on_the_training_split"),
    PlantedBug("DVC's autostage turned on", ".dvc/config",
               "autostage = false", "autostage = true",
               "tests/test_commits.py::test_every_commit_holds_the_params_its_dvc_lock_ran"),
    PlantedBug("the stages package sets OpenMP's waiting when imported", "stages/__init__.py",
               '"""Fashion-MNIST softmax regression as DVC stages: one module per stage."""\n',
               '"""Fashion-MNIST softmax regression as DVC stages: one module per stage."""\n'
               'import os\nos.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")\n',
               "tests/test_imports.py::test_importing_every_stage_module_changes_nothing_in_the_process"),
    PlantedBug("evaluate.json back in the DVC cache", "dvc.yaml",
               "      - metrics/evaluate.json:\n          cache: false\n", "      - metrics/evaluate.json\n",
               "tests/test_dvc_yaml.py::test_metrics_and_plots_live_in_git_and_every_other_output_in_the_dvc_cache"),
    PlantedBug("a classification report kept in git", "dvc.yaml",
               "      - metrics/report_nn.json\n", "      - metrics/report_nn.json:\n          cache: false\n",
               "tests/test_dvc_yaml.py::test_metrics_and_plots_live_in_git_and_every_other_output_in_the_dvc_cache"),
    PlantedBug("push-runs leaves the runs' metrics behind", "stages/sweep.py",
               '        return sum(len(repo.cloud.push(objects).transferred)', '        return sum(0',
               "tests/test_experiments.py::test_run_cache_pushed_from_one_clone_spares_the_other_clone_any_training"),
    PlantedBug("YAML 1.2 exponent floats forgotten", "stages/params.py",
               "rf\"|{_DIGITS}{_EXPONENT}|\\.(?:inf|Inf|INF))$", "rf\"|\\.(?:inf|Inf|INF))$",
               "tests/test_params.py::test_numbers_are_read_as_yaml_1_2_reads_them"),
    PlantedBug("evaluate declares softmax.py again", "dvc.yaml",
               "      - stages/evaluate.py\n", "      - stages/evaluate.py\n      - stages/softmax.py\n",
               "tests/test_dvc_yaml.py::test_each_stage_declares_exactly_the_code_it_runs"),
    PlantedBug("NaN written as an empty field", "stages/common.py",
               'na_rep="nan"', 'na_rep=""',
               "tests/test_figures.py::test_a_diverged_runs_nan_and_inf_survive_the_csv_round_trip"),
    PlantedBug("best sweep setting by min", "stages/sweep_report.py",
               "top = max(candidates", "top = min(candidates",
               "tests/test_readme.py::test_reports_are_what_sweep_report_makes_of_the_saved_experiments"),
    PlantedBug("loss curve starts at iteration 0", "stages/train_scratch.py",
               '"iteration": range(1, result.iterations + 1)', '"iteration": range(result.iterations)',
               "tests/test_train_scratch.py::test_the_stage_measures_train_accuracy_on_the_training_split"),
    PlantedBug("softmax shift dropped", "stages/softmax.py",
               "shifted = logits - logits.amax(dim=1, keepdim=True).detach()", "shifted = logits",
               "tests/test_divergence.py::test_gradient_descent_stops_at_the_first_diverged_iteration"),
    PlantedBug("plain progress ignores its interval", "stages/common.py",
               "if self.clock() - self.last_line >= self.interval_s:", "if True:",
               "tests/test_progress.py::test_without_a_terminal_a_line_every_interval_and_one_at_the_end"),
    PlantedBug("progress on stdout instead of stderr", "stages/common.py",
               "stream = stream if stream is not None else sys.stderr",
               "stream = stream if stream is not None else sys.stdout",
               "tests/test_progress.py::test_progress_reaches_stderr_and_changes_no_output_file"),
    PlantedBug("matplotlib imported with figures.py", "stages/figures.py",
               "import numpy as np\nimport pandas as pd\n",
               "import matplotlib.pyplot\nimport numpy as np\nimport pandas as pd\n",
               "tests/test_imports.py::test_evaluate_writes_its_metrics_before_loading_matplotlib_and_never_loads_torch"),
    PlantedBug("md5 checked through torchvision again", "stages/download.py",
               "import hashlib\n", "import hashlib\n\nimport torchvision.datasets.utils\n",
               "tests/test_imports.py::test_download_verifies_the_bundled_files_without_torch_or_torchvision"),
    PlantedBug("the queue's progress counts only successes as ended", "stages/sweep.py",
               'ended = sum(status in ("Success", "Failed") for status in states.values())',
               'ended = sum(status == "Success" for status in states.values())',
               "tests/test_sweep.py::test_waiting_shows_experiments_done_of_total_and_failed_so_far"),
    PlantedBug("a reused pid taken for the killed writer", "stages/common.py",
               "return started is None or started <= temporary.lstat().st_mtime + 1.0", "return True",
               "tests/test_interrupt.py::test_a_temporary_whose_pid_now_belongs_to_a_newer_process_is_stale"),
    PlantedBug("a killed writer not yet reaped taken for a live one", "stages/common.py",
               '    if state in ("Z", "X"):\n        return False\n', "",
               "tests/test_interrupt.py::test_a_temporary_of_a_killed_writer_not_yet_reaped_is_stale"),
    PlantedBug("workspace files hard-linked too", "tests/conftest.py",
               "if any(Path(src).is_relative_to(folder) for folder in shared):", "if True:",
               "tests/test_fixtures.py::test_copy_links_git_objects_and_dvc_cache_and_copies_everything_else"),
    PlantedBug("module folder removed after a failure", "tests/conftest.py",
               "    if request.session.testsfailed == failed_before:\n", "    if True:\n",
               "tests/test_fixtures.py::test_module_folder_is_shared_then_removed_unless_a_test_failed"),
    PlantedBug("`tmp_path_retention_policy` back to `\"all\"`", "pyproject.toml",
               'tmp_path_retention_policy = "failed"', 'tmp_path_retention_policy = "all"',
               "tests/test_fixtures.py::test_pyproject_keeps_the_tmp_path_of_failed_tests_only"),
    PlantedBug("`dvc queue start` read through a pipe", "stages/sweep.py",
               'result = subprocess.run(["dvc", *args], stdout=log, stderr=subprocess.STDOUT, check=False)',
               'result = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)',
               "tests/test_sweep.py::test_starting_the_queue_returns_while_its_workers_still_hold_its_output"),
    PlantedBug("`dvc queue start` read through a pipe, in the tests", "tests/conftest.py",
               "stdout=log, stderr=subprocess.STDOUT, timeout=600)", "capture_output=True, timeout=600)",
               "tests/test_fixtures.py::test_start_queue_returns_while_the_workers_it_started_still_hold_its_output"),
    PlantedBug("workers stopped by name, not by folder", "tests/conftest.py",
               'if b"queue-worker" in (proc / "cmdline").read_bytes() and \\',
               'if b"queue-worker" in (proc / "cmdline").read_bytes() or \\',
               "tests/test_fixtures.py::test_stop_queue_workers_stops_those_under_the_folder_only"),
    PlantedBug("a shared template built by every worker", "tests/conftest.py",
               "        root = root.parent\n", "        pass\n",
               "tests/test_fixtures.py::test_a_shared_template_is_built_once_for_all_workers"),
    PlantedBug("anchors keep their punctuation", "tests/test_docs.py",
               'return re.sub(r"[^\\w\\- ]", "", text).replace(" ", "-")', 'return text.replace(" ", "-")',
               "tests/test_docs.py::test_anchors_are_githubs"),
    PlantedBug("links inside code checked as links", "tests/test_docs.py",
               '    return re.sub(r"`[^`\\n]*`", "", prose)\n', "    return prose\n",
               "tests/test_docs.py::test_a_broken_link_or_anchor_is_found"),
    PlantedBug("numpy's pin moved in requirements.in, the lock not made again", "requirements.in",
               "numpy==2.4.6\n", "numpy==2.4.7\n",
               "tests/test_requirements.py::test_each_lock_holds_every_package_of_its_input_file_at_the_version_it_pins"),
    PlantedBug("torch's hashes cut off from its pin", "requirements.txt",
               "torch==2.14.1 \\\n", "torch==2.14.1\n",
               "tests/test_requirements.py::test_every_package_of_each_lock_is_pinned_with_its_hashes"),
    PlantedBug("triton's Linux marker dropped", "requirements.txt",
               "triton==3.8.0 ; python_full_version < '3.15' and sys_platform == 'linux' \\\n", "triton==3.8.0 \\\n",
               "tests/test_requirements.py::test_the_cuda_packages_carry_a_marker_that_keeps_them_off_macos_and_windows"),
    PlantedBug("weight images drawn transposed", "stages/figures.py",
               "weight_row.reshape(IMAGE_SIDE, IMAGE_SIDE)", "weight_row.reshape(IMAGE_SIDE, IMAGE_SIDE).T",
               "tests/test_figures.py::test_weights_figure_draws_each_class_row_as_its_28_by_28_image"),
    PlantedBug("weight images' colour scale not centred on zero", "stages/figures.py",
               "np.percentile(np.abs(matrix), WEIGHT_PERCENTILE)", "np.percentile(matrix, WEIGHT_PERCENTILE)",
               "tests/test_figures.py::test_weights_figure_draws_each_class_row_as_its_28_by_28_image"),
    PlantedBug("the weights drawn without the last pixel, not the intercept", "stages/evaluate.py",
               '"scratch": scratch_model["Theta"][:, 1:]', '"scratch": scratch_model["Theta"][:, :-1]',
               "tests/test_figures.py::test_class_weights_leave_out_the_scratch_models_intercept_column"),
]


def tracked_copy(destination):
    """The project's tracked files (as they are in the working tree) under `destination`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = PROJECT_ROOT / relative
        if source.is_file():
            target = Path(destination) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return Path(destination)


def run_tests(root, tests):
    """pytest on `tests` in the copy at `root`; True when they all passed."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                             "-o", "addopts=", *tests], cwd=root, capture_output=True, text=True, timeout=900)
    return result.returncode == 0, result.stdout[-2000:]


def markdown(bugs):
    lines = ["| planted bug | where | a test that fails |", "|---|---|---|"]
    lines += [f"| {bug.name} | `{bug.path}` | `{bug.test.removeprefix('tests/')}` |" for bug in bugs]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="keyword", default="", help="only the bugs whose name or file holds this text")
    parser.add_argument("--markdown", action="store_true", help="print docs/testing.md's table and stop")
    args = parser.parse_args(argv)
    bugs = [bug for bug in BUGS if args.keyword in bug.name or args.keyword in bug.path]
    if args.markdown:
        print(markdown(bugs))
        return 0
    if not bugs:
        print(f"error: -k {args.keyword!r}: no planted bug matches", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="planted-bugs-") as folder:
        root = tracked_copy(Path(folder) / "project")
        passed, printed = run_tests(root, sorted({bug.test for bug in bugs}))
        if not passed:
            print(f"error: the tests fail before any bug is planted:\n{printed}", file=sys.stderr)
            return 2
        missed = []
        for bug in bugs:
            original = bug.plant(root)
            try:
                caught = not run_tests(root, [bug.test])[0]
            finally:
                (root / bug.path).write_text(original, encoding="utf-8")
            print(f"{'caught' if caught else 'MISSED'}  {bug.name}  ({bug.path}; {bug.test})", flush=True)
            if not caught:
                missed.append(bug)
    print(f"{len(bugs) - len(missed)} of {len(bugs)} planted bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
