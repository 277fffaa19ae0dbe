"""Fashion-MNIST softmax regression as DVC stages: one module per stage."""

import os

# Read by OpenMP when torch loads, so set before any stage imports torch (an
# existing setting wins). Threads waiting for the next parallel step sleep
# instead of spinning: on a machine busy with other work, spinning threads
# held the cores the working ones needed and a gradient-descent iteration
# took 3-4x as long; on an idle machine it changes nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
