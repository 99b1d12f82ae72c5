"""The `aico` command. It wires every package together (settings, database, Ray, Serve), so
it sits above them all: nothing imports `cli`."""
