"""Evaluation of tool calls: parse model outputs, match arguments, compute the STE metrics.

Modules: parse (outputs -> ParsedCall), match (string / AST / judge), items (prediction files),
metrics (aggregation), evaluate (the `eval` command's function), predict (predictions from any
backend, with retrieved demonstrations), cli (the click commands).
"""
