"""The overhead benchmark: `python -m bench` measures the gateway as ratios to calling the
mock upstreams directly, in the same run (see bench/README.md)."""
