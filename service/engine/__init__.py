"""The engine: the vLLM child process, its launcher, and the supervisor that keeps it healthy.

- `process`: the vLLM OpenAI server as a child process (command line, start, exit, stop);
  standard library only, so `python -m service` starts it before the web stack is imported.
- `launch`: `python -m service.engine.launch`, which ties the engine to the gateway's life.
- `supervisor`: spawn or attach, warm up, probe, restart with backoff, give up.
- `health`: the engine's phase as the health routes report it.

Nothing is imported here: `service.engine.process` must stay cheap to import.
"""
