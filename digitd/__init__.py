"""digitd: offline spoken-digit recognizer.

The project's folders map to subpackages: daemon/ -> digitd.daemon (runtime),
train/ -> digitd.train (training, needs the ``train`` extra), models/ -> digitd.models
(the shipped model as package data).
"""

__version__ = "0.1.0"
