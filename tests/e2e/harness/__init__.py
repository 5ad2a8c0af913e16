"""The end-to-end harness, by job: processes (relayd, /proc), addresses,
byte streams, backends and ssh tunnels. conftest.py holds the fixtures and
re-exports every name here, so tests keep importing from conftest."""
