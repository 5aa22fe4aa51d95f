"""wod-backend: the backend of Workshops-on-Demand, in Python."""

__version__ = "0.1.0"
