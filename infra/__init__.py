"""The fleet as code: `regions.yaml` -> the fleet model -> CDKTF stacks -> Terraform JSON, and the
instance contract rendered into each region's boot script. Map: docs/architecture.md.

- `config`: the fleet model (schema, validation, loading); `catalog`: regions and GPU types.
- `naming`, `tagging`: the names and the tags / labels every stack shares.
- `stacks`: one class per stack kind; `constructs`: their building blocks, by cloud.
- `boot`: the instance contract and the boot script rendered from it (`templates/instance/`).
- `app`, `cli`, `cliutil`: synthesis and `python -m infra`.
"""
