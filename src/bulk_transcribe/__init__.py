"""Bulk Transcribe: many videos in, transcripts out — sequentially, or in parallel on Ray."""

__version__ = "0.1.0"
