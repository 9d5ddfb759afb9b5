"""One class per stack kind, instantiated per stack name (`infra.app.add_stack`): `bootstrap`,
`aws-<region>` (`aws_region`), `gcp-<region>` (`gcp_region`), `global` (`global_routing`);
`common` holds what every stack shares (state backend, AWS tags, remote-state lookups)."""
