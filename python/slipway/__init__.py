"""Python client for Slipway, the machine-learning lifecycle in one binary.

    >>> from slipway import Slipway
    >>> client = Slipway("http://127.0.0.1:5000")
    >>> client.health()
    {'status': 'ok'}

Pure Python (standard library only). Tracking itself goes through the `mlflow` client pointed
at the same server; this client covers what is Slipway's own.
"""

from .client import Dataset, DatasetVersion, Slipway, SlipwayError
from .tuning import PRUNED_EXIT_CODE, Study, Trial, TrialPruned, current_trial

__all__ = ["Dataset", "DatasetVersion", "PRUNED_EXIT_CODE", "Slipway", "SlipwayError", "Study", "Trial",
           "TrialPruned", "current_trial"]
__version__ = "0.1.0"
