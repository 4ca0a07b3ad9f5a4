"""The ``gaitwatch`` command line and the offline tools: demo, replay/record, evaluations, training, benchmark.

Tools depend on the runtime packages (``daemon``, ``tracking``, ``pose``, ``gait``); nothing in those imports
from here, so the running service carries none of this code.
"""
