"""`llm-fleet`: one command for the fleet's whole lifecycle (check, plan, deploy, status, chat, ...).

The operator's front end over the project's own pieces: the fleet model (`infra.config`),
synthesis of the chosen stacks (`infra.app.synth`), terraform or OpenTofu per stack in deploy
order, and the operator tools' library functions (`scripts.ops`), rendered with Rich.

Every user mistake ends as one line (`llm-fleet: error: ...`, or the fleet file's own
`FILE: field.path: ...` lines) and exit status 2; a runtime failure as one line and exit 1;
never a traceback. Heavy imports (cdktf, boto3, openai) happen inside the commands that use
them, so `--help` and completion stay fast.
"""
