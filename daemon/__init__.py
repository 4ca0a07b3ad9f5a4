"""The asyncio service: the only package that knows about time, threads, sockets and the event loop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gaitwatch")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
