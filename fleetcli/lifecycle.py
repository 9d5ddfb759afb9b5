"""plan / deploy / destroy: the chosen stacks, synthesized and run through terraform in order.

Deploy order is the fleet's (`Fleet.stack_names()`): bootstrap, the canary region, the other
regions, global; destroy runs it backwards. Per stack: `init`, `plan -out` (summarized from
`show -json`), a confirmation showing what will be created / updated / replaced / destroyed
(unless `--auto-approve`), `apply` of exactly that saved plan, then its outputs (the endpoint).
`deploy` and `destroy` stop at the first failure; `plan` plans every stack and reports each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetcli import local_endpoints, prereqs
from fleetcli.errors import CliError, PrerequisitesError, UsageError
from fleetcli.progress import StackProgress, StackTask
from fleetcli.terraform import PlanSummary, Terraform, TerraformError, find_binary
from infra.config import Fleet

Backend = Literal["fleet", "local"]
# (stack, what the saved plan does, "apply" | "destroy") -> approved?
Confirm = Callable[[str, PlanSummary, str], bool]


@dataclass(frozen=True)
class RunOptions:
    out: Path
    backend: Backend = "fleet"
    synth: bool = True
    terraform_binary: str | None = None
    timeout_min: float = 60.0
    auto_approve: bool = False
    lock: bool = True

    @property
    def stacks_dir(self) -> Path:
        return self.out / "stacks"


@dataclass
class StackResult:
    stack: str
    result: str  # applied, no changes, destroyed, nothing to destroy, changes, failed, declined, skipped
    ok: bool
    seconds: float | None = None
    endpoint: str = ""
    summary: PlanSummary | None = None
    error: str | None = None


@dataclass
class Run:
    """What a lifecycle command prepared: the fleet, the stacks in order, terraform."""

    fleet: Fleet
    stacks: list[str]
    options: RunOptions
    terraform: Terraform
    account: str | None = None
    local_endpoint: str | None = None
    results: list[StackResult] = field(default_factory=list)

    def dir(self, stack: str) -> Path:
        return self.options.stacks_dir / stack


def select(fleet: Fleet, names: Sequence[str], *, default: Sequence[str] | None = None) -> list[str]:
    """The named stacks in deploy order (default: `default`, else every stack); unknown: one line."""
    known = fleet.stack_names()
    for name in names:
        if name not in known:
            raise UsageError(f"unknown stack '{name}'; the fleet's stacks: {', '.join(known)}")
    wanted = set(names) if names else set(default if default is not None else known)
    return [n for n in known if n in wanted]


def s3_state(fleet: Fleet, options: RunOptions) -> bool:
    return options.backend == "fleet" and fleet.state.backend == "s3"


def prepare(fleet: Fleet, stacks: list[str], options: RunOptions, *, action: str) -> Run:
    """Check every prerequisite (one line each for all that are missing), then synthesize."""
    problems: list[str] = []
    binary = None
    try:
        binary = find_binary(options.terraform_binary)
    except UsageError:
        raise
    except CliError as exc:
        problems.append(exc.message)
    access = None
    if prereqs.needs_aws(fleet, stacks, s3_state=s3_state(fleet, options)):
        try:
            access = prereqs.aws_access(fleet.state.region)
        except CliError as exc:
            problems.append(exc.message)
    if prereqs.needs_gcp(fleet, stacks):
        problem = prereqs.gcp_credentials_problem()
        if problem:
            problems.append(problem)
    if access is not None:
        if action != "destroy" and prereqs.needs_zone(stacks):
            problem = prereqs.hosted_zone_problem(access, fleet.global_.hosted_zone)
            if problem:
                problems.append(problem)
        if s3_state(fleet, options) and not (action == "deploy" and "bootstrap" in stacks):
            problem = prereqs.state_bucket_problem(access, fleet.state.bucket, fleet.state.region)
            if problem:
                problems.append(problem)
    if problems:
        raise PrerequisitesError(problems)
    assert binary is not None
    tf = Terraform(binary, options.out / "logs", timeout_s=options.timeout_min * 60)
    run = Run(fleet, stacks, options, tf, account=access.account if access else None)
    run.local_endpoint = local_endpoints.local_endpoint()
    return run


def synthesize(run: Run) -> None:
    """Write the chosen stacks' JSON (only those), or check they are there with --no-synth."""
    options = run.options
    if options.synth:
        try:
            from infra.app import synth
        except ImportError as exc:
            raise CliError(f"the infra extra is missing ({exc.name}): pip install 'llm-fleet[infra,ops]'") from None
        try:
            synth(run.fleet, run.stacks, outdir=options.out, backend=options.backend)
        except Exception as exc:  # jsii reports the construct's error as a generic exception
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CliError(f"synth failed: {first}") from None
    for name in run.stacks:
        if not (run.dir(name) / "cdk.tf.json").is_file():
            raise UsageError(
                f"--no-synth: {run.dir(name) / 'cdk.tf.json'} not found; run without --no-synth "
                f"(or python -m infra synth --stack {name} --out {options.out})"
            )
    for name in run.stacks:
        local_endpoints.apply_to(run.dir(name), run.local_endpoint)


def endpoint_of(stack: str, outputs: dict[str, Any]) -> str:
    for key in ("global_endpoint", "endpoint_name", "endpoint"):
        value = outputs.get(key)
        if isinstance(value, str) and value:
            return f"https://{value}"
    bucket = outputs.get("state_bucket_name")
    return f"s3://{bucket}" if isinstance(bucket, str) and bucket else ""


def _outputs(run: Run, stack: str) -> dict[str, Any]:
    try:
        return run.terraform.outputs(stack, run.dir(stack))
    except TerraformError:
        return {}


def _apply_one(
    run: Run, stack: str, task: StackTask, progress: StackProgress, confirm: Confirm, *, destroy: bool
) -> StackResult:
    tf, cwd = run.terraform, run.dir(stack)
    verb = "destroy" if destroy else "apply"
    task.step("init")
    tf.init(stack, cwd)
    task.step("plan -destroy" if destroy else "plan")
    summary = tf.plan(stack, cwd, destroy=destroy)
    if not summary.has_changes:
        text = "nothing to destroy" if destroy else "no changes"
        task.done(True, text)
        endpoint = "" if destroy else endpoint_of(stack, _outputs(run, stack))
        return StackResult(stack, text, True, task.seconds, endpoint, summary)
    if not run.options.auto_approve:
        with progress.paused():
            approved = confirm(stack, summary, verb)
        if not approved:
            task.done(False, f"not approved: nothing {'destroyed' if destroy else 'applied'}")
            return StackResult(stack, "declined", False, task.seconds, summary=summary, error="not approved")
    task.step(f"{verb} ({summary.short()})")
    tf.apply(stack, cwd)
    if destroy:
        task.done(True, f"destroyed ({len(summary.delete)} resources)")
        return StackResult(stack, "destroyed", True, task.seconds, summary=summary)
    endpoint = endpoint_of(stack, tf.outputs(stack, cwd))
    task.done(True, f"applied ({summary.short()})" + (f" {endpoint}" if endpoint else ""))
    return StackResult(stack, "applied", True, task.seconds, endpoint, summary)


def apply_stacks(run: Run, progress: StackProgress, confirm: Confirm, *, destroy: bool = False) -> list[StackResult]:
    """deploy (or destroy, in reverse): stop at the first failure or refusal; the rest `skipped`."""
    order = list(reversed(run.stacks)) if destroy else run.stacks
    for i, stack in enumerate(order, 1):
        with progress.stack(i, stack) as task:
            try:
                result = _apply_one(run, stack, task, progress, confirm, destroy=destroy)
            except TerraformError as exc:
                task.done(False, f"{exc.command} failed")
                result = StackResult(stack, "failed", False, task.seconds, error=exc.message)
        run.results.append(result)
        if not result.ok:
            break
    done = {r.stack for r in run.results}
    run.results += [StackResult(s, "skipped", False) for s in order if s not in done]
    return run.results


def plan_stacks(run: Run, progress: StackProgress, show: Callable[[str, PlanSummary], None]) -> list[StackResult]:
    """Plan every stack (a failure does not stop the others); `show` prints each plan's changes."""
    tf = run.terraform
    for i, stack in enumerate(run.stacks, 1):
        with progress.stack(i, stack) as task:
            try:
                task.step("init")
                tf.init(stack, run.dir(stack))
                task.step("plan")
                summary = tf.plan(stack, run.dir(stack), lock=run.options.lock)
            except TerraformError as exc:
                task.done(False, f"{exc.command} failed")
                run.results.append(StackResult(stack, "failed", False, task.seconds, error=exc.message))
                continue
            task.done(True, f"changes ({summary.short()})" if summary.has_changes else "no changes")
            if summary.has_changes:
                with progress.paused():
                    show(stack, summary)
            run.results.append(
                StackResult(stack, "changes" if summary.has_changes else "no changes", True, task.seconds, "", summary)
            )
    return run.results
