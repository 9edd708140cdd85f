"""envrepro: snapshot a training environment, rebuild it as a pinned image, prove numerical parity."""

__version__ = "0.1.0"
