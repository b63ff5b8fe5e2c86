"""planbound's flow: schemas, planners, nodes, routing, the graph builder and the CLI."""
