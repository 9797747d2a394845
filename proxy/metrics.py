"""Compatibility name: the metrics now live in `proxy.observe.metrics` (registry, prices,
export, publish). Kept so `from proxy import metrics` callers work until they move."""

from proxy.observe.metrics import *  # noqa: F403
from proxy.workers import METRICS_DIR_ENV as DIR_ENV  # noqa: F401
