"""The ``goldfish`` command: one module per command group; ``app.main`` parses and dispatches.

Each module parses its arguments, calls one service (or the tool registry through
:func:`goldfish.cli.call.tool_caller`) and renders the result; no domain logic lives here.
"""
