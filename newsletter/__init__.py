"""Gimpo City newsletter service (김포시 뉴스레터)."""

__version__ = "0.1.0"
