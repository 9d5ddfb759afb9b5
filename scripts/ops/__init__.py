"""Operator tools, each runnable as `python -m scripts.ops.<tool>`.

preflight     GPU quotas, zone offerings and spot prices per region: does the fleet fit?
fleet_status  instance groups, healthy targets, per-region health of the global endpoint
smoke         the global and every regional endpoint through the official OpenAI SDK
cost          monthly cost at min and max replicas for the capacity mix vs all on-demand
matrix        the deploy workflow's matrix from `python -m infra stacks --json`

Every tool takes its cloud clients injected (tests pass clients aimed at moto_server or a
local recording server), shows progress on stderr and ends a user mistake or a cloud
error in one line, never a traceback.
"""
