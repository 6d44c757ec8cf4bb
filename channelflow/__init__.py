"""channelflow's shell: command line, runner, demo, simulator and Kafka I/O.

Importing it makes numerical libraries single-threaded unless the environment
says otherwise: a Bytewax worker is one process with one thread of work, and
OpenBLAS's helper threads only contend with it (measured: the churn stage's
model refits ran 1.5x slower end to end with them on a busy 2-core machine).
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
