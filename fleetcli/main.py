"""`llm-fleet`: the commands, their options and the one place errors become one line.

Every command takes `--file` (default `regions.yaml`, or `$LLM_FLEET_FILE`); the commands that
build or judge the fleet also take `--model` / `--quantization`, applied to the file through
its own validation (fleetcli.fleetfile). `main(argv)` runs the app without Typer's standalone
handling, so a usage mistake, a fleet file mistake, a missing prerequisite, a terraform or
cloud failure each end as one line (exit 2 for usage and the fleet file, 1 at run time; for
`plan` every error is 1, because 2 means "changes"), and nothing ends as a traceback.
"""

import os
import sys
import time
from enum import StrEnum
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fleetcli import console, fleetfile
from fleetcli.errors import (
    EXIT_CHANGES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliError,
    UsageError,
)
from infra.config import Fleet, Quantization

if TYPE_CHECKING:  # imported by the commands that use them, so --help stays fast
    from fleetcli import lifecycle, terraform

DEBUG_ENV = "LLM_FLEET_DEBUG"  # set to 1 to see the traceback of an unexpected error

app = typer.Typer(
    name=PROG,
    help=(
        "One command for the whole fleet: check the fleet file, plan and deploy its stacks with terraform "
        "(or OpenTofu), see the fleet's status, smoke-test and chat with its endpoints."
    ),
    epilog=(
        "Quick start: llm-fleet check; llm-fleet deploy; llm-fleet status; llm-fleet chat. "
        "Every command: llm-fleet COMMAND --help."
    ),
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class BackendChoice(StrEnum):
    fleet = "fleet"
    local = "local"


# --- options shared by the commands -----------------------------------------------------------


def _complete_quantization(incomplete: str) -> list[str]:
    return [q.value for q in Quantization if q.value.startswith(incomplete)]


def _complete_stacks(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        fleet = fleetfile.load(ctx.params.get("file") or fleetfile.DEFAULT_FILE)
    except CliError:
        return []
    return [name for name in fleet.stack_names() if name.startswith(incomplete)]


FileOpt = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        envvar=fleetfile.FILE_ENV,
        help="Fleet file.",
        show_default=True,
        dir_okay=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Override model.id of the fleet file (validated like the file; the checkpoint is derived again).",
        show_default=False,
    ),
]
QuantOpt = Annotated[
    str | None,
    typer.Option(
        "--quantization",
        help="Override model.quantization: int8 | fp8 | none (validated against every region's GPU).",
        autocompletion=_complete_quantization,
        show_default=False,
    ),
]
StacksArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Stacks (see `llm-fleet check`); default: all, in deploy order.",
        autocompletion=_complete_stacks,
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path,
    typer.Option("--out", help="Where the stacks are synthesized (and, with --backend local, their state kept)."),
]
BackendOpt = Annotated[
    BackendChoice,
    typer.Option(
        "--backend",
        help="Terraform state: as the fleet file says (S3), or local files beside the stacks (trials, local clouds).",
        case_sensitive=False,
    ),
]
AutoApproveOpt = Annotated[
    bool, typer.Option("--auto-approve", "-y", help="Apply without asking (CI). Without it a terminal is needed.")
]
SynthOpt = Annotated[
    bool,
    typer.Option("--synth/--no-synth", help="Synthesize the stacks first, or use the ones already in --out."),
]
TerraformOpt = Annotated[
    str | None,
    typer.Option(
        "--terraform-binary",
        envvar="LLM_FLEET_TERRAFORM",
        help="terraform or tofu to run (default: terraform, else tofu, on PATH).",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Minutes one terraform command may take.", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EndpointsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="Check this http(s):// origin instead of the fleet's names (repeatable).",
        show_default=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=["LLM_FLEET_API_KEY", "OPENAI_API_KEY"],
        help="API key (prefer the environment variables: a flag lands in shell history).",
        show_default=False,
    ),
]
ApiKeyFileOpt = Annotated[
    Path | None,
    typer.Option("--api-key-file", help="File holding the API key (first non-comment line).", dir_okay=False),
]
CaBundleOpt = Annotated[
    Path | None,
    typer.Option("--ca-bundle", help="PEM CA bundle to verify TLS with (default: the system CAs).", dir_okay=False),
]
ServedModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Served model name to ask (default: model.served_name of the fleet file).",
        show_default=False,
    ),
]

DEFAULT_FILE = Path(fleetfile.DEFAULT_FILE)
DEFAULT_OUT = Path("cdktf.out")


def _fleet(file: Path, model: str | None = None, quantization: str | None = None) -> Fleet:
    return fleetfile.load(file, model=model, quantization=quantization)


def _optional_fleet(ctx: typer.Context, file: Path) -> Fleet | None:
    """The fleet when its file is there or was asked for; None when the default file is absent."""
    source = ctx.get_parameter_source("file")
    if source is not None and source.name == "DEFAULT" and not fleetfile.exists(file):
        return None
    return _fleet(file)


def _version_callback(value: bool) -> None:
    if value:
        try:
            print(f"{PROG} {version('llm-fleet')}")
        except PackageNotFoundError:
            print(f"{PROG} (not installed)")
        raise typer.Exit(EXIT_OK)


@app.callback()
def root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """One command for the whole fleet lifecycle."""
    if ctx.invoked_subcommand is None:
        console.out().print(ctx.get_help())
        raise typer.Exit(EXIT_OK)


# --- the fleet file -------------------------------------------------------------------------


@app.command(epilog="Example: llm-fleet check --file regions.yaml --quantization fp8")
def check(file: FileOpt = DEFAULT_FILE, model: ModelOpt = None, quantization: QuantOpt = None) -> None:
    """Validate the fleet file and show the fleet: model, endpoint, regions and the stacks in deploy order."""
    from fleetcli.views import fleet_summary

    fleet = _fleet(file, model, quantization)
    console.out().print(fleet_summary(fleet, str(file)))


# --- the stacks -----------------------------------------------------------------------------


def _run_options(
    out: Path,
    backend: BackendChoice,
    synth: bool,
    terraform_binary: str | None,
    timeout: float,
    *,
    auto_approve: bool = False,
    lock: bool = True,
) -> "lifecycle.RunOptions":
    from fleetcli import lifecycle

    return lifecycle.RunOptions(
        out=out,
        backend="local" if backend == BackendChoice.local else "fleet",
        synth=synth,
        terraform_binary=terraform_binary,
        timeout_min=timeout,
        auto_approve=auto_approve,
        lock=lock,
    )


def _header(run: "lifecycle.Run", verb: str) -> None:
    fleet = run.fleet
    order = list(reversed(run.stacks)) if verb == "destroying" else run.stacks
    places = [f"AWS account {run.account}"] if run.account else []
    if any(s.startswith("gcp-") for s in run.stacks) and fleet.gcp.project:
        places.append(f"GCP project {fleet.gcp.project}")
    where = " and ".join(places) or "the fleet's clouds"
    state = (
        f"state in s3://{fleet.state.bucket}"
        if run.options.backend == "fleet" and fleet.state.backend == "s3"
        else f"local state in {run.options.stacks_dir}"
    )
    bin_ = run.terraform.binary
    err = console.err()
    err.print(f"{verb} {' -> '.join(order)} in {where} ({bin_.name} {bin_.version}; {state})", markup=False)
    if run.local_endpoint:
        err.print(f"AWS_ENDPOINT_URL={run.local_endpoint}: the aws provider is aimed at this local cloud", markup=False)


def _synthesize(run: "lifecycle.Run") -> None:
    from fleetcli import lifecycle

    err = console.err()
    if not run.options.synth:
        lifecycle.synthesize(run)
        return
    what = f"synthesizing {', '.join(run.stacks)}"
    if not err.is_terminal:
        err.print(what, markup=False)
    started = time.perf_counter()
    with err.status(what):
        lifecycle.synthesize(run)
    took = time.perf_counter() - started
    err.print(
        f"[green]✓[/] synthesized {len(run.stacks)} stack(s) into {escape(str(run.options.stacks_dir))} ({took:.1f} s)"
    )


def _require_terminal(auto_approve: bool, verb: str) -> None:
    if not auto_approve and not sys.stdin.isatty():
        raise UsageError(
            f"{verb} asks for confirmation and stdin is not a terminal: pass --auto-approve (CI) "
            "or run it in a terminal"
        )


def _confirm(stack: str, summary: "terraform.PlanSummary", verb: str) -> bool:
    from rich.prompt import Confirm

    from fleetcli.views import plan_details

    err = console.err()
    err.print(plan_details(stack, summary, limit=None if verb == "destroy" else 40))
    try:
        return Confirm.ask(f"{verb.capitalize()} {stack}?", console=err, default=False)
    except EOFError:
        return False


def _finish(run: "lifecycle.Run", title: str) -> None:
    from fleetcli.views import results_table

    console.out().print(results_table(run.results, title=title))
    failed = next((r for r in run.results if not r.ok and r.result != "skipped"), None)
    if failed is not None:
        if failed.result == "declined":
            raise CliError(f"{failed.stack}: not approved; it and the stacks after it were left as they are")
        raise CliError(failed.error or f"{failed.stack}: failed")


@app.command(
    epilog=(
        "Example: llm-fleet plan --no-lock aws-us-west-2 (exit status: 0 no changes, 2 changes, 1 error, "
        "including a bad flag or fleet file)"
    )
)
def plan(
    *,
    stacks: StacksArg = None,
    file: FileOpt = DEFAULT_FILE,
    model: ModelOpt = None,
    quantization: QuantOpt = None,
    out: OutOpt = DEFAULT_OUT,
    backend: BackendOpt = BackendChoice.fleet,
    synth: SynthOpt = True,
    lock: Annotated[
        bool, typer.Option("--lock/--no-lock", help="Take the state lock (a read-only CI role cannot).")
    ] = True,
    terraform_binary: TerraformOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Synthesize the stacks and show, per stack, what terraform would change."""
    from fleetcli import lifecycle
    from fleetcli.progress import StackProgress
    from fleetcli.views import plan_details, plan_table

    fleet = _fleet(file, model, quantization)
    names = lifecycle.select(fleet, stacks or [])
    options = _run_options(out, backend, synth, terraform_binary, timeout, lock=lock)
    run = lifecycle.prepare(fleet, names, options, action="plan")
    _header(run, "planning")
    err = console.err()
    _synthesize(run)

    def show(stack: str, summary: "terraform.PlanSummary") -> None:
        console.out().print(plan_details(stack, summary))

    with StackProgress(err, len(names)) as progress:
        lifecycle.plan_stacks(run, progress, show)
    console.out().print(plan_table(run.results))
    failed = [r for r in run.results if not r.ok]
    if failed:
        raise CliError(failed[0].error or f"{failed[0].stack}: plan failed")
    if any(r.result == "changes" for r in run.results):
        raise typer.Exit(EXIT_CHANGES)


@app.command(
    epilog=(
        "Example: llm-fleet deploy --auto-approve (every stack); llm-fleet deploy aws-us-west-2 global. "
        "Local clouds (moto, LocalStack): AWS_ENDPOINT_URL=http://127.0.0.1:5000 llm-fleet deploy --backend local"
    )
)
def deploy(
    *,
    stacks: StacksArg = None,
    file: FileOpt = DEFAULT_FILE,
    model: ModelOpt = None,
    quantization: QuantOpt = None,
    auto_approve: AutoApproveOpt = False,
    out: OutOpt = DEFAULT_OUT,
    backend: BackendOpt = BackendChoice.fleet,
    synth: SynthOpt = True,
    terraform_binary: TerraformOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Synthesize and apply the stacks in deploy order: bootstrap, the canary region, the other regions, global.

    Each stack is planned first; without --auto-approve you confirm what it creates, updates, replaces and
    destroys. Stops at the first failure; ends with a table of stack, result, seconds and endpoint.
    """
    from fleetcli import lifecycle
    from fleetcli.progress import StackProgress

    fleet = _fleet(file, model, quantization)
    names = lifecycle.select(fleet, stacks or [])
    _require_terminal(auto_approve, "deploy")
    options = _run_options(out, backend, synth, terraform_binary, timeout, auto_approve=auto_approve)
    run = lifecycle.prepare(fleet, names, options, action="deploy")
    _header(run, "deploying")
    err = console.err()
    _synthesize(run)
    with StackProgress(err, len(names)) as progress:
        lifecycle.apply_stacks(run, progress, _confirm)
    _finish(run, "deploy")


@app.command(
    epilog=(
        "Example: llm-fleet destroy --auto-approve (regions and global); llm-fleet destroy bootstrap "
        "(the state bucket and CI identities, once the bucket is empty)"
    )
)
def destroy(
    *,
    stacks: StacksArg = None,
    file: FileOpt = DEFAULT_FILE,
    auto_approve: AutoApproveOpt = False,
    out: OutOpt = DEFAULT_OUT,
    backend: BackendOpt = BackendChoice.fleet,
    synth: SynthOpt = True,
    terraform_binary: TerraformOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Destroy the stacks in reverse deploy order (default: every stack but bootstrap, which holds the state)."""
    from fleetcli import lifecycle
    from fleetcli.progress import StackProgress

    fleet = _fleet(file)
    names = lifecycle.select(fleet, stacks or [], default=[n for n in fleet.stack_names() if n != "bootstrap"])
    _require_terminal(auto_approve, "destroy")
    options = _run_options(out, backend, synth, terraform_binary, timeout, auto_approve=auto_approve)
    run = lifecycle.prepare(fleet, names, options, action="destroy")
    _header(run, "destroying")
    err = console.err()
    _synthesize(run)
    with StackProgress(err, len(names)) as progress:
        lifecycle.apply_stacks(run, progress, _confirm, destroy=True)
    _finish(run, "destroy")


# --- the running fleet ------------------------------------------------------------------------


@app.command(epilog="Example: llm-fleet preflight --quantization fp8")
def preflight(
    file: FileOpt = DEFAULT_FILE, model: ModelOpt = None, quantization: QuantOpt = None, as_json: JsonOpt = False
) -> None:
    """Does the fleet fit the accounts? GPU quotas (on-demand and spot), zones offering the type, spot prices."""
    from fleetcli import tools

    raise typer.Exit(tools.preflight(_fleet(file, model, quantization), as_json=as_json))


@app.command(epilog="Example: llm-fleet status --json")
def status(file: FileOpt = DEFAULT_FILE, as_json: JsonOpt = False) -> None:
    """What runs now: instance groups, on-demand/spot, healthy targets, each region's global health check.

    Exit status 1 when a region has no healthy capacity.
    """
    from fleetcli import tools

    raise typer.Exit(tools.status(_fleet(file), as_json=as_json))


@app.command(epilog="Example: llm-fleet cost --offline")
def cost(
    file: FileOpt = DEFAULT_FILE,
    model: ModelOpt = None,
    quantization: QuantOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Use the dated price table only (no API calls).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Monthly cost at min and max replicas: the reserved / on-demand / spot mix against all on-demand."""
    from fleetcli import tools

    raise typer.Exit(tools.cost(_fleet(file, model, quantization), offline=offline, as_json=as_json))


@app.command(
    epilog=(
        "Example: llm-fleet smoke (the global name and every region's); "
        "llm-fleet smoke --endpoint http://127.0.0.1:8080 --model tiny (a local region's load balancer)"
    )
)
def smoke(
    ctx: typer.Context,
    *,
    file: FileOpt = DEFAULT_FILE,
    endpoint: EndpointsOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    model: ServedModelOpt = None,
    ca_bundle: CaBundleOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 60.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Answer length.")] = 16,
    min_cert_days: Annotated[int, typer.Option("--min-cert-days", help="Fail when a certificate expires sooner.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """End to end per endpoint: verified TLS (https), the model listed, a streamed answer with its latency."""
    from fleetcli import tools

    fleet = _optional_fleet(ctx, file) if endpoint else _fleet(file)
    key = tools.api_key(api_key, api_key_file)
    code = tools.smoke(
        fleet,
        endpoints=endpoint or [],
        key=key,
        model=model,
        ca_bundle=ca_bundle,
        timeout_s=timeout,
        max_tokens=max_tokens,
        min_cert_days=min_cert_days,
        as_json=as_json,
    )
    raise typer.Exit(code)


@app.command(
    epilog=(
        "Example: llm-fleet chat (the fleet's global endpoint); "
        'echo "What is a load balancer?" | llm-fleet chat --endpoint http://127.0.0.1:8080 --model tiny'
    )
)
def chat(
    ctx: typer.Context,
    *,
    file: FileOpt = DEFAULT_FILE,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="http(s):// origin to talk to (default: https://<global.domain> of the fleet file).",
            show_default=False,
        ),
    ] = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Served model name (default: the fleet's model.served_name, else the first the endpoint lists).",
            show_default=False,
        ),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="A system prompt.", show_default=False)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest answer, in tokens.", min=1)] = 512,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.", min=0)] = 0.7,
    ca_bundle: CaBundleOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per answer.")] = 120.0,
) -> None:
    """Chat with any endpoint of the fleet in the terminal; the answer streams as it is generated.

    On a terminal: /reset forgets the conversation, /exit or Ctrl-D quits, Ctrl-C stops an answer. Piped
    (stdin not a terminal): each input line is one turn and only the answers are printed.
    """
    from fleetcli import chat as chat_mod
    from fleetcli import tools

    fleet = _optional_fleet(ctx, file)
    if endpoint is None:
        if fleet is None:
            raise UsageError(f"--endpoint: required when there is no fleet file ({file} not found)")
        endpoint = f"https://{fleet.global_.domain}"
    if model is None and fleet is not None:
        model = fleet.model.served_name
    options = chat_mod.ChatOptions(
        endpoint=endpoint,
        api_key=tools.api_key(api_key, api_key_file),
        model=model,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        ca_bundle=ca_bundle,
        timeout_s=timeout,
    )
    raise typer.Exit(chat_mod.run(options, stdin=sys.stdin, out=sys.stdout, err=console.err()))


# --- the repository's own demo and benches ------------------------------------------------------


def _checkout() -> Path:
    """The repository checkout holding devkit/ (demo and bench need it; the package does not ship it)."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / "devkit").is_dir() or not (repo / "Makefile").is_file():
        raise CliError(
            f"{PROG} demo/bench need a repository checkout (devkit/ is not installed with the package): "
            "clone the repository, run `make setup`, then `llm-fleet demo` or `make demo` there"
        )
    return repo


@app.command(epilog="Example: llm-fleet demo --stay-up")
def demo(
    stay_up: Annotated[bool, typer.Option("--stay-up", help="Keep the local region running until Ctrl-C.")] = False,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds for the whole demo.", min=60)] = 2400,
) -> None:
    """The whole system on this machine, no cloud account: check, synth, deploy to moto, a local region, chat.

    Runs the repository's regions.yaml (`make demo`); needs a checkout after `make setup`.
    """
    _checkout()
    demo_script = import_module("scripts.demo")  # repository only (imports devkit)

    argv = ["--timeout", str(timeout)] + (["--stay-up"] if stay_up else [])
    raise typer.Exit(demo_script.main(argv))


@app.command(epilog="Example: llm-fleet bench --only synth,gateway")
def bench(
    only: Annotated[str, typer.Option("--only", help="Comma-separated areas (gateway,synth,...); default: all.")] = "",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per bench module.")] = 1500.0,
    skip_run: Annotated[bool, typer.Option("--skip-run", help="Only aggregate the area files already there.")] = False,
) -> None:
    """Every performance figure into bench-results/ (JSON, markdown, PNG), as `make bench`."""
    _checkout()
    bench_script = import_module("scripts.bench")  # repository only

    argv = ["--timeout", str(timeout)] + (["--only", only] if only else []) + (["--skip-run"] if skip_run else [])
    raise typer.Exit(bench_script.main(argv))


# --- running it --------------------------------------------------------------------------------


def _subcommand(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _usage_message(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see: {path} --help)" if path else ""
    return exc.format_message().rstrip(".") + hint


def _unexpected(exc: BaseException) -> tuple[list[str], int]:
    """A cloud SDK error the operator can act on, else an internal error; one line either way."""
    try:
        from scripts.ops._common import OpsError, cloud_error_message
    except ImportError:  # pragma: no cover - scripts ships with the package
        return [f"{PROG}: error: internal error: {type(exc).__name__}: {exc}"], EXIT_FAILURE
    if isinstance(exc, OpsError):
        return [f"{PROG}: error: {exc}"], EXIT_USAGE if exc.exit_code == EXIT_USAGE else EXIT_FAILURE
    message = cloud_error_message(exc)
    if message is not None:
        return [f"{PROG}: error: {message}"], EXIT_FAILURE
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return [
        f"{PROG}: error: internal error: {type(exc).__name__}: {first} (set {DEBUG_ENV}=1 for the traceback)"
    ], EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    lines: list[str] = []
    try:
        result = command.main(args=args, prog_name=PROG, standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except typer.Exit as exc:
        code = exc.exit_code
    except CliError as exc:
        lines, code = exc.lines(), exc.exit_code
    except typer.Abort:
        lines, code = [f"{PROG}: aborted"], EXIT_FAILURE
    except typer.TyperException as exc:  # the argument parser's usage errors
        lines, code = [f"{PROG}: error: {_usage_message(exc)}"], getattr(exc, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        lines, code = [f"{PROG}: interrupted"], EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        lines, code = _unexpected(exc)
    for line in lines:
        console.error_line(line)
    if _subcommand(args) == "plan" and code != EXIT_OK and (lines or code != EXIT_CHANGES):
        code = EXIT_FAILURE  # plan's contract: 2 means changes, every error is 1
    return code


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())
