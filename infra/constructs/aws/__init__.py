"""AWS constructs: `(scope, id_, *, props)`, resources as attributes; only AWS bindings imported."""
