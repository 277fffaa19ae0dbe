"""The pipeline's five stages, one script each: read params.yaml, call the library (fmnist), write outputs."""
