"""CDKTF app for the global LLM inference fleet (see DESIGN.md)."""
