"""Tool execution against a response cache: live executors, record / replay / simulate modes,
built-in offline tools. See executor.py for the entry point (`Executor.execute`)."""
