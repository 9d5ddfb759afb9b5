"""GCP constructs: `(scope, id_, *, props)`, resources as attributes; only Google bindings imported,
so an AWS-only synth never loads them."""
