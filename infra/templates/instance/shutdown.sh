#!/bin/bash
# llm-fleet GCP shutdown script (deletion, scale-in, preemption): stop the service within the
# budget GCP gives a shutdown script. docker stop sends SIGTERM: readiness turns 503 at once,
# in-flight requests finish, the engine stops. On preemption the gateway is already draining
# on the metadata notice (tighter windows); stopping the unit changes nothing then.
timeout "$SHUTDOWN_BUDGET_S" systemctl stop llm-fleet.service || true
