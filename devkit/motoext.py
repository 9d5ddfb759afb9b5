"""moto_server with the Auto Scaling API that moto 5.2.5 lacks: CompleteLifecycleAction.

`python -m devkit.motoext -H 127.0.0.1 -p PORT` is `moto_server` with one more action. The
instance's lifecycle agent calls it after the drain, as on AWS; it follows the Auto Scaling
API reference ("CompleteLifecycleAction"): the request names the group, the hook, the result
(`CONTINUE` or `ABANDON`) and the instance (or the action token); a hook the group does not
have, an instance not in the group or another result is a `ValidationError`. For a
termination hook (`autoscaling:EC2_INSTANCE_TERMINATING`), either result lets the
termination proceed: the instance leaves the group (its desired capacity already counted it
out) and is terminated in EC2, which `DescribeAutoScalingInstances` and `DescribeInstances`
then show. Each completed action is also kept, for the tests, in
`GET /__llm_fleet__/lifecycle-actions`.

It also answers the public Deep Learning AMI parameters (`/aws/service/deeplearning/...`),
which moto does not ship and refuses to create: each resolves to the region's Amazon Linux
2023 x86_64 image from moto's own catalogue, a stand-in GPU AMI. The regional stacks look
their AMI up there, so they deploy to this server as synthesized, with no override file
(`llm-fleet deploy` against moto relies on it).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

COMPLETED: list[dict[str, str]] = []
_LOCK = threading.Lock()
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
RESULTS = ("CONTINUE", "ABANDON")


def install() -> None:
    """Add CompleteLifecycleAction to moto's Auto Scaling responses."""
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    def complete_lifecycle_action(self: AutoScalingResponse) -> Any:
        backend = self.autoscaling_backend
        group_name = self._get_param("AutoScalingGroupName")
        hook_name = self._get_param("LifecycleHookName")
        result = self._get_param("LifecycleActionResult")
        instance_id = self._get_param("InstanceId")
        token = self._get_param("LifecycleActionToken")
        if result not in RESULTS:
            raise ValidationError(f"LifecycleActionResult: {result!r} is not one of {', '.join(RESULTS)}")
        if not instance_id and not token:
            raise ValidationError("Either InstanceId or LifecycleActionToken must be specified")
        group = backend.autoscaling_groups.get(group_name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - {group_name}")
        hooks = backend.describe_lifecycle_hooks(group_name, [hook_name])
        if not hooks:
            raise ValidationError(f"No Lifecycle Hook found with name {hook_name} for group {group_name}")
        members = {state.instance.id for state in group.instance_states}
        if instance_id not in members:
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
        if hooks[0].lifecycle_transition == TERMINATING:
            backend.detach_instances(group_name, [instance_id], should_decrement=True)
            backend.ec2_backend.terminate_instances([instance_id])
        with _LOCK:
            COMPLETED.append(
                {"AutoScalingGroupName": group_name, "LifecycleHookName": hook_name, "InstanceId": instance_id}
                | {"LifecycleActionResult": result}
            )
        return EmptyResult()

    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action  # type: ignore[attr-defined]


DLAMI_PREFIX = "/aws/service/deeplearning/"
DLAMI_STAND_IN_SOURCE = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def install_public_gpu_ami() -> None:
    """Make every `/aws/service/deeplearning/...` parameter resolve to a stand-in image id."""
    from collections import defaultdict

    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ParameterDict

    original = ParameterDict._check_loading_status

    def check_loading_status(self: ParameterDict, key: str) -> None:
        original(self, key)
        name = self.normalize_name(str(key or ""))
        if not name.startswith(DLAMI_PREFIX) or defaultdict.__contains__(self, name):
            return
        source = self[DLAMI_STAND_IN_SOURCE]  # moto loads the region's public Amazon Linux parameters
        if not source:
            return
        # moto instantiates its Parameter itself; its type information declares it abstract
        stand_in = Parameter(  # type: ignore[abstract]
            account_id=self.account_id,
            name=name,
            value=source[-1].value,
            parameter_type="String",
            description="llm-fleet devkit: stand-in for the public Deep Learning AMI parameter",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=1,
            data_type="aws:ec2:image",
        )
        defaultdict.__getitem__(self, name).append(stand_in)

    ParameterDict._check_loading_status = check_loading_status  # type: ignore[method-assign]


def _completed_view() -> tuple[str, int, dict[str, str]]:
    with _LOCK:
        return json.dumps(COMPLETED), 200, {"Content-Type": "application/json"}


def main(argv: list[str]) -> None:
    install()
    install_public_gpu_ami()
    from moto import server

    original = server.create_backend_app  # type: ignore[attr-defined]  # the function moto_server builds its apps with

    def create_backend_app(service: Any) -> Any:
        app = original(service)
        if "/__llm_fleet__/lifecycle-actions" not in {rule.rule for rule in app.url_map.iter_rules()}:
            app.add_url_rule("/__llm_fleet__/lifecycle-actions", "llm_fleet_lifecycle_actions", _completed_view)
        return app

    server.create_backend_app = create_backend_app  # type: ignore[attr-defined]
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
