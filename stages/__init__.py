"""Fashion-MNIST softmax regression as DVC stages: one module per stage."""
