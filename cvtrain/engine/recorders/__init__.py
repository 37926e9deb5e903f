"""The recorders of the `logger` group, one module each (`conf/logger/<name>.yaml` names its class), and the
fan-out the engine writes to (`fanout.py`)."""
