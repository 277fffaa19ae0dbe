"""The upload-artifact stand-in's work (see action.yml): copy the artifact's files into a folder."""

import glob
import os
import shutil
import sys
from pathlib import Path


def files_and_roots(workspace, lines):
    """Each path line -> (the files it names, the folder its files are stored relative to)."""
    for line in lines:
        pattern = line.strip()
        if not pattern:
            continue
        for match in sorted(glob.glob(str(workspace / pattern))) or [str(workspace / pattern)]:
            path = Path(match)
            if path.is_dir():
                yield sorted(p for p in path.rglob("*") if p.is_file()), path
            elif path.is_file():
                yield [path], path.parent


def main():
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    target_root = os.environ.get("UPLOAD_ARTIFACT_STAND_IN_DIR")
    if not target_root:
        sys.exit("upload-artifact stand-in: give the folder with act --env UPLOAD_ARTIFACT_STAND_IN_DIR=...")
    name = os.environ["ARTIFACT_NAME"]
    found = list(files_and_roots(workspace, os.environ["ARTIFACT_PATHS"].splitlines()))
    files = [file for group, _ in found for file in group]
    if not files:
        message = f"No files were found with the provided path: {os.environ['ARTIFACT_PATHS'].strip()}"
        if os.environ["IF_NO_FILES_FOUND"] == "error":
            sys.exit(f"Error: {message}")
        if os.environ["IF_NO_FILES_FOUND"] == "warn":
            print(f"Warning: {message}. No artifacts will be uploaded.")
        return
    root = Path(os.path.commonpath([str(folder) for _, folder in found]))
    target = Path(target_root) / name
    if target.exists():
        sys.exit(f"upload-artifact stand-in: an artifact named {name} was already uploaded")
    for file in files:
        destination = target / file.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)
    print(f"artifact {name}: {len(files)} files from {root.relative_to(workspace) if root != workspace else '.'}")


if __name__ == "__main__":
    main()
