"""The parallel engine: model-holding Ray actors fed longest-first by a scheduler, watched by a progress actor.

Only `cluster.py`, `executor.py`, `workers.py`, `progress_actor.py` and `rate_limit.py`'s actor helpers import Ray, and
only when called: the plain classes (Scheduler, RateLimitCore, Worker, ProgressActor) run without it.
"""
