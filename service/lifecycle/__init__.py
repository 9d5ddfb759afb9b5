"""How a gateway ends: the drain, the clouds' preemption notices, and the state they act on.

- `drain`: the drain state machine (serving -> draining -> rejecting -> stopped) with its budget.
- `preemption`: the AWS spot interruption (IMDSv2) and GCP preemption watchers.
- `inflight`: the in-flight count and the callbacks run once a response is fully sent.
- `state`: what one running gateway holds (`app.state.service`): readiness, drain, exit.
"""
