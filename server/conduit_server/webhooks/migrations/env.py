from conduit_server.runtime.migrations import run_in_env

run_in_env()
