"""The fleet's building blocks, grouped by cloud (`aws/`, `gcp/`); `github_oidc` holds what both
clouds' CI trusts share."""
