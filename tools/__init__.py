"""Commands that are not pipeline stages: predict on your own images, the sweep report."""
