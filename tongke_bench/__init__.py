"""The harness around tongke, kept out of the service's import graph.

`tongke bench` (single.py, nodes.py, run.py, host.py, loss.py) and `tongke demo`
(demo_run.py) drive the real service with synthetic peers; the CLI imports this package
only for those two commands, so `tongke serve` never loads it.
"""
