"""The small shared contracts every layer speaks: batches, bad samples, the task and evaluator protocols,
prediction sinks, detection ground truth and the monitor rule.

This package imports no other cvtrain layer (only `cvtrain.errors`), so the engine, data, models, metrics and
tasks can all depend on it without depending on each other.
"""
