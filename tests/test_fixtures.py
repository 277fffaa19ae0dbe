"""The test copies of a project: cheap on disk, and independent of the project they copy."""

import os

from conftest import copy_project


def test_copy_links_git_objects_and_dvc_cache_and_copies_everything_else(tmp_path):
    source = tmp_path / "source"
    for relative in (".git/objects/ab/cdef", ".dvc/cache/files/md5/12/3456", ".dvc/tmp/btime",
                     "params.yaml", "data/flat/train_images.npy"):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(relative)
    copy = copy_project(source, tmp_path / "copy")

    for relative in (".git/objects/ab/cdef", ".dvc/cache/files/md5/12/3456"):
        assert os.path.samefile(source / relative, copy / relative), relative
    for relative in (".dvc/tmp/btime", "params.yaml", "data/flat/train_images.npy"):
        assert not os.path.samefile(source / relative, copy / relative), relative
        (copy / relative).write_text("changed by a test")
        assert (source / relative).read_text() == relative


def test_copy_keeps_symlinks_as_links(tmp_path):
    source = tmp_path / "source"
    (source / "data").mkdir(parents=True)
    (source / "data" / "model").write_text("weights")
    (source / "latest").symlink_to("data/model")
    copy = copy_project(source, tmp_path / "copy")
    assert os.readlink(copy / "latest") == "data/model"
