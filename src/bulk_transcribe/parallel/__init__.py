"""The Ray executor: the engine's model-holding workers as Ray actors (remote_worker.py) on an embedded local Ray or
a cluster (cluster.py, plan.py, preflight.py), driven through executor.py, with the run's progress actor
(progress_actor.py: the run's ledger), download limiter actor (rate_limit.py), event batching (events.py) and Ray
dashboard metrics (metrics.py).

This package is the only one that imports Ray, and engine/ never imports it (an import-linter contract in the tests
keeps it so): the driver, scheduler, worker and ledger are plain classes, run here as actors.
"""
