"""``python -m benchmarks.speech``: speech recognition accuracy, CPU and latency per engine."""
