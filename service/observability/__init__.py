"""What a running gateway tells its operators.

- `metrics`: the Prometheus registry of one gateway (and the NVML collector on a GPU host).
- `logs`: JSON logs, one object per line, carrying the request id being served.
"""
