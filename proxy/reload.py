"""Compatibility name: live state is `proxy.runtime`, change detection `proxy.watch`, and the
settings `serve` hands to workers `proxy.workers`. Kept so callers work until they move."""

from proxy.runtime import BackendState as BackendState
from proxy.runtime import ReloadResult as ReloadResult
from proxy.runtime import Runtime as Runtime
from proxy.runtime import Snapshot as Snapshot
from proxy.runtime import read_config as read_config
from proxy.watch import POLL as POLL
from proxy.workers import STAMP_ENV as STAMP_ENV
from proxy.workers import WORKERS_ENV as WORKERS_ENV
